"""Run the Alembic migrations from code (`broadsheet db upgrade`, `broadsheet dev`)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

# The repository's `migrations/`, which pyproject.toml ships inside the package.
MIGRATIONS_PACKAGE = "app.migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files(MIGRATIONS_PACKAGE)))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema; call it outside a running event loop (Alembic runs its own)."""
    command.upgrade(alembic_config(database_url), revision)
