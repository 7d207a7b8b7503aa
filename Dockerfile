# One image for the API and the worker; the command picks the role.
#
# The first stage builds the wheel; the image installs only that wheel, so Broadsheet runs
# from its installed package (templates, static files and migrations inside `app`), with
# no copy of the source tree. tests/test_packaging.py builds a wheel from the same COPY
# lines and runs it from an empty directory.
FROM python:3.11-slim AS build

WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY email_templates ./email_templates
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

COPY --from=build /wheels /wheels
RUN pip install --no-compile /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --create-home --home-dir /srv/broadsheet broadsheet
WORKDIR /srv/broadsheet
USER broadsheet

EXPOSE 8000
CMD ["broadsheet", "serve", "--host", "0.0.0.0", "--port", "8000"]
