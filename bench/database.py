"""Fresh databases for the benchmark, the schema from the real migrations, and fast setup.

Loading subscribers is setup, not a measurement, so it is one `INSERT ... SELECT` in SQL
(generate_series on PostgreSQL, a recursive CTE on SQLite) rather than the import API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.clock import utcnow
from app.kit.db import UTCDateTime

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True, slots=True)
class Database:
    kind: str  # "sqlite" or "postgresql"
    url: str  # SQLAlchemy URL, as BROADSHEET_DATABASE_URL takes it


def migrate(url: str) -> None:
    """The schema, built by the command an operator runs."""
    env = {**os.environ, "BROADSHEET_DATABASE_URL": url, "BROADSHEET_DEV": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"db upgrade failed:\n{result.stderr[-2000:]}")


@asynccontextmanager
async def fresh_database(kind: str, label: str) -> AsyncIterator[Database]:
    """A new, migrated, empty database that is removed afterwards, whatever happens."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="broadsheet-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/broadsheet.db"
            migrate(url)
            yield Database(kind, url)
        return
    name = f"bench_{os.getpid()}_{label}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        url = f"{base}/{name}"
        migrate(url)
        yield Database(kind, url)
    finally:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


_SUBSCRIBERS_PG = """
INSERT INTO subscriber (email, name, attributes, created_at, updated_at)
SELECT CAST(:prefix AS text) || g || '@example.net', 'Reader ' || g, '{}'::json, :now, :now
FROM generate_series(1, :n) AS g
"""

_SUBSCRIBERS_SQLITE = """
INSERT INTO subscriber (email, name, attributes, created_at, updated_at)
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n)
SELECT :prefix || x || '@example.net', 'Reader ' || x, '{}', :now, :now FROM g
"""

# Every new subscriber (its address starts with the prefix) gets an active subscription,
# with the consent fields an import would record.
_SUBSCRIPTIONS = """
INSERT INTO subscription (newsletter_id, subscriber_id, status, source, requested_at,
                          confirmed_at, soft_bounces, created_at, updated_at)
SELECT :newsletter_id, id, 'active', 'import', :now, :now, 0, :now, :now
FROM subscriber WHERE email LIKE CAST(:prefix AS text) || '%'
"""


async def load_subscribers(engine: AsyncEngine, *, newsletter_id: int, n: int, prefix: str) -> None:
    """`n` active subscribers of one newsletter, addresses `<prefix><i>@example.net`."""
    now_param = bindparam("now", type_=UTCDateTime())
    insert = _SUBSCRIBERS_PG if engine.dialect.name == "postgresql" else _SUBSCRIBERS_SQLITE
    values = {"n": n, "prefix": prefix, "now": utcnow(), "newsletter_id": newsletter_id}
    async with engine.begin() as conn:
        await conn.execute(text(insert).bindparams(now_param), values)
        await conn.execute(text(_SUBSCRIPTIONS).bindparams(now_param), values)
    async with engine.connect() as conn:
        # Fresh statistics, as autovacuum would have them a minute later; PostgreSQL
        # chooses its plans for the enqueue and claim queries from them.
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("ANALYZE"))
