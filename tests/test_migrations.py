"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
import email.policy
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.db import Base, create_engine
from app.kit.ids import installation_id, installation_tag
from app.kit.migrate import alembic_config, upgrade
from app.models import Installation
from app.rendering.prepared import freeze_issue, prepare_issue
from tests.conftest import create_pg_database, drop_pg_database
from tests.rendering import samples


def _diff(connection: Any) -> list[Any]:
    def here(item: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        # An index the model declares for one database only (`.ddl_if(dialect=...)`, the
        # trigram search indexes) exists on that database only.
        only = getattr(item, "_ddl_if", None)
        return only is None or only.dialect in (None, connection.dialect.name)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": here}
    )
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


@asynccontextmanager
async def _fresh_database(tmp_path: Path, db_kind: str, name: str) -> AsyncIterator[str]:
    """A new empty database of the kind under test (not the shared test database)."""
    if db_kind != "postgresql":
        yield f"sqlite+aiosqlite:///{tmp_path / name}.db"
        return
    database = f"broadsheet_mig_{os.getpid()}_{name}_{uuid.uuid4().hex[:6]}"
    url = await create_pg_database(database)
    try:
        yield url
    finally:
        await drop_pg_database(database)


async def _stored_installation_ids(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(Installation.value))).scalars())
    finally:
        await engine.dispose()


async def _delivery_message_id(url: str) -> str:
    """The Message-ID a worker on this database gives delivery 1 of issue 7."""
    engine = create_engine(url)
    try:
        installation = await installation_tag(engine)
    finally:
        await engine.dispose()
    settings = samples.settings()
    newsletter, issue = samples.newsletter(), samples.issue()
    freeze_issue(issue, newsletter, [], settings)
    prepared = prepare_issue(
        issue, newsletter, settings, samples.signer(), installation=installation
    )
    return prepared.message_id(1)


async def test_each_database_gets_its_own_installation_id_so_message_ids_never_repeat(
    tmp_path: Path, db_kind: str
) -> None:
    async with (
        _fresh_database(tmp_path, db_kind, "one") as one,
        _fresh_database(tmp_path, db_kind, "two") as two,
    ):
        await asyncio.to_thread(upgrade, one)
        await asyncio.to_thread(upgrade, two)
        [first] = await _stored_installation_ids(one)
        [second] = await _stored_installation_ids(two)
        assert re.fullmatch(r"[0-9a-f]{32}", first)
        assert first != second
        id_one, id_two = await _delivery_message_id(one), await _delivery_message_id(two)
        assert id_one != id_two
        for message_id in (id_one, id_two):
            header = email.policy.default.header_factory("Message-ID", message_id)
            assert header.defects == ()
            assert str(header) == message_id
            assert re.fullmatch(r"<d1\.i7\.[a-z2-7]{10}@news\.example\.com>", message_id)
        # Read again (another process, another engine): the same id, the same Message-ID.
        assert await _stored_installation_ids(one) == [first]
        assert await _delivery_message_id(one) == id_one


async def test_the_installation_migration_downgrades_and_upgrades_again(
    tmp_path: Path, db_kind: str
) -> None:
    async with _fresh_database(tmp_path, db_kind, "down") as url:
        await asyncio.to_thread(upgrade, url)
        [before] = await _stored_installation_ids(url)
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0004")
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        assert "installation" not in tables
        await asyncio.to_thread(upgrade, url)
        [after] = await _stored_installation_ids(url)
        assert after != before


async def test_a_lost_installation_row_is_made_again_once_even_by_processes_racing(
    tmp_path: Path, db_kind: str
) -> None:
    async with _fresh_database(tmp_path, db_kind, "lost") as url:
        await asyncio.to_thread(upgrade, url)
        engines = [create_engine(url) for _ in range(4)]
        try:
            async with engines[0].begin() as conn:
                await conn.execute(delete(Installation))
            made = await asyncio.gather(*(installation_id(e) for e in engines))
        finally:
            for engine in engines:
                await engine.dispose()
        assert len(set(made)) == 1
        assert await _stored_installation_ids(url) == made[:1]


async def _execute(url: str, *statements: str) -> list[Any]:
    """Run SQL statements in one transaction; the last one's rows."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows: list[Any] = []
            for statement in statements:
                result = await conn.execute(text(statement))
                rows = list(result.all()) if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


_SUMS = (
    "SELECT newsletter_id, status, SUM(n) FROM subscription_count"
    " GROUP BY newsletter_id, status ORDER BY newsletter_id, status"
)


async def test_the_counts_migration_backfills_existing_rows_and_downgrades(
    tmp_path: Path, db_kind: str
) -> None:
    async with _fresh_database(tmp_path, db_kind, "counts") as url:
        await asyncio.to_thread(upgrade, url, "0007")
        now = "'2026-12-01 10:00:00'"
        statuses = ["active", "active", "pending", "unsubscribed", "active"]
        await _execute(
            url,
            *(
                "INSERT INTO newsletter (id, slug, name, description, from_name, from_email,"
                " postal_address, double_opt_in, timezone, auto_send_upcoming, track_opens,"
                f" track_clicks, template, created_at, updated_at) VALUES ({i}, 'n{i}', 'N',"
                f" '', 'N', 'n@example.com', '', true, 'UTC', false, false, false, 'default',"
                f" {now}, {now})"
                for i in (1, 2)
            ),
            *(
                "INSERT INTO subscriber (id, email, name, attributes, created_at, updated_at)"
                f" VALUES ({i}, 'p{i}@example.com', '', '{{}}', {now}, {now})"
                for i in range(1, 6)
            ),
            *(
                "INSERT INTO subscription (newsletter_id, subscriber_id, status, source,"
                " requested_at, soft_bounces, created_at, updated_at)"
                f" VALUES ({1 if i < 5 else 2}, {i}, '{status}', 'api', {now}, 0, {now}, {now})"
                for i, status in enumerate(statuses, 1)
            ),
        )
        await asyncio.to_thread(upgrade, url)
        expected = [(1, "active", 2), (1, "pending", 1), (1, "unsubscribed", 1), (2, "active", 1)]
        assert [tuple(r) for r in await _execute(url, _SUMS)] == expected
        # The triggers are there: a change moves the counts.
        moved = await _execute(
            url, "UPDATE subscription SET status = 'active' WHERE subscriber_id = 3", _SUMS
        )
        assert [tuple(r) for r in moved] == [
            (1, "active", 3),
            (1, "pending", 0),
            (1, "unsubscribed", 1),
            (2, "active", 1),
        ]

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0007")
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        assert "subscription_count" not in tables
        # No trigger is left behind to write into the missing table.
        await _execute(url, "DELETE FROM subscription WHERE subscriber_id = 5")
        await asyncio.to_thread(upgrade, url)
        again = [tuple(r) for r in await _execute(url, _SUMS)]
        assert again == [(1, "active", 3), (1, "unsubscribed", 1)]
