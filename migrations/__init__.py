"""Alembic environment and revisions, shipped inside the package as `app.migrations`."""
