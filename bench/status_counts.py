"""What the subscription counters (migration 0008) save and cost, at a million subscriptions.

    .venv/bin/python -m bench.status_counts [--subscribers 1000000] [--kind postgresql]

Two fresh databases: one at revision 0007 (no counters) and one at head. In each,
`load_subscribers` inserts the subscriptions in one statement (timed: the triggers' extra
cost), then the dashboard's counts are read 50 times: the grouped COUNT(*) that
status_counts ran before 0008, the counters' query alone, and status_counts itself in a
unit of work (session, read, commit). Then, PostgreSQL only, the subscription INSERT is
run four more times in the head database, with the insert trigger disabled and enabled
in turn. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.kit.migrate import alembic_config
from app.models import Newsletter
from app.subscribers import service
from bench.dashboard import percentile
from bench.database import fresh_database, load_subscribers

READS = 50
_COUNT = "SELECT status, count(*) FROM subscription WHERE newsletter_id = :id GROUP BY status"

# The counters' read alone (what count_repository.read runs), beside the old COUNT.
_COUNTERS = (
    "SELECT status, sum(n), count(*) FROM subscription_count WHERE newsletter_id = :id"
    " GROUP BY status"
)


# load_subscribers' subscription INSERT (one statement of a million rows), run again in
# the same database with the counting trigger disabled and enabled, in turn: on a shared
# machine a comparison inside one database is steadier than two databases' loads.
_RELOAD = """
INSERT INTO subscription (newsletter_id, subscriber_id, status, source, requested_at,
                          confirmed_at, soft_bounces, created_at, updated_at)
SELECT :id, id, 'active', 'import', now(), now(), 0, now(), now() FROM subscriber
"""


async def _trigger_cost(engine: AsyncEngine, newsletter_id: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"without_trigger_s": [], "with_trigger_s": []}
    for enabled in (False, True, False, True):
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE subscription CASCADE"))
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM subscription"))
        async with engine.begin() as conn:
            if not enabled:
                await conn.execute(
                    text("ALTER TABLE subscription DISABLE TRIGGER subscription_count_insert")
                )
            started = time.perf_counter()
            await conn.execute(text(_RELOAD), {"id": newsletter_id})
            took = time.perf_counter() - started
            await conn.execute(
                text("ALTER TABLE subscription ENABLE TRIGGER subscription_count_insert")
            )
        found["with_trigger_s" if enabled else "without_trigger_s"].append(round(took, 2))
    return found


async def _timed(read: Callable[[], Awaitable[object]]) -> dict[str, float]:
    times = []
    for _ in range(READS):
        started = time.perf_counter()
        await read()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 0.95), 2),
    }


async def _measure(kind: str, revision: str, subscribers: int) -> dict[str, Any]:
    async with fresh_database(kind, f"counts_{revision}") as database:
        if revision != "head":
            await asyncio.to_thread(command.downgrade, alembic_config(database.url), revision)
        engine = create_engine(database.url)
        sessions = create_sessionmaker(engine)
        try:
            async with unit_of_work(sessions) as session:
                newsletter = Newsletter(
                    slug="counts", name="Counts", from_name="Counts", from_email="c@example.org"
                )
                session.add(newsletter)
                await session.flush()
            started = time.perf_counter()
            await load_subscribers(engine, newsletter_id=newsletter.id, n=subscribers, prefix="c")
            load_s = time.perf_counter() - started

            async def count() -> object:
                async with engine.connect() as conn:
                    return (await conn.execute(text(_COUNT), {"id": newsletter.id})).all()

            async def counters() -> object:
                async with unit_of_work(sessions) as session:
                    return await service.status_counts(session, newsletter)

            async def counters_query() -> object:
                async with engine.connect() as conn:
                    return (await conn.execute(text(_COUNTERS), {"id": newsletter.id})).all()

            result: dict[str, Any] = {"load_subscribers_s": round(load_s, 2)}
            result["grouped_count"] = await _timed(count)
            if revision == "head":
                result["counters_query"] = await _timed(counters_query)
                result["status_counts"] = await _timed(counters)
                result["status_counts_answer"] = await counters()
                if kind == "postgresql":
                    result["subscription_insert"] = await _trigger_cost(engine, newsletter.id)
            return result
        finally:
            await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--kind", default="postgresql", choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    report = {
        "subscribers": args.subscribers,
        "kind": args.kind,
        "before_0007": await _measure(args.kind, "0007", args.subscribers),
        "after_head": await _measure(args.kind, "head", args.subscribers),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
