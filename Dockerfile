# One image for the API and the worker; the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /srv/broadsheet
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY email_templates ./email_templates
RUN pip install --no-compile . && useradd --system --home /srv/broadsheet broadsheet
USER broadsheet

EXPOSE 8000
CMD ["broadsheet", "serve", "--host", "0.0.0.0", "--port", "8000"]
