"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.db import Base
from app.kit.migrate import upgrade


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_do_not_drift_apart(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


async def test_migrations_create_every_table(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_upgrading_sqlite_keeps_rows_that_point_at_a_rebuilt_table(tmp_path: Path) -> None:
    """SQLite migrations rebuild tables (batch mode); events must keep their delivery."""
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url, "0002")
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "INSERT INTO delivery (id, issue_id, subscription_id, status, attempts)"
            " VALUES (7, 1, 1, 'sent', 1)"
        )
        db.execute("INSERT INTO event (kind, delivery_id, created_at) VALUES ('open', 7, '2026')")
        db.commit()
    upgrade(url)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT delivery_id FROM event").fetchall() == [(7,)]
        assert db.execute("SELECT id FROM delivery").fetchall() == [(7,)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
