"""Queries on the rate counters (`rate_counter`): one upsert per hit, and their cleanup."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.sql import dialect_insert
from app.models import RateCounter


async def count_hits(
    session: AsyncSession, rows: list[dict[str, Any]]
) -> list[tuple[str, int, int]]:
    """Add one to each key's window (or start a new one); (key, count, window_start) each.

    One statement for all the keys (SQLite 3.35+ and PostgreSQL both support
    `INSERT .. ON CONFLICT DO UPDATE .. RETURNING`). The caller passes the rows in key
    order, so two requests that share keys lock them in the same order and never deadlock.
    """
    stmt = dialect_insert(session, RateCounter).values(rows)
    current = RateCounter.window_start
    # A request from the current window adds one; the first of a new window starts at one.
    # A straggler from an older window (a slow replica) counts in the newer one.
    stmt = stmt.on_conflict_do_update(
        index_elements=[RateCounter.key],
        set_={
            "count": case((current >= stmt.excluded.window_start, RateCounter.count + 1), else_=1),
            "window_start": case(
                (current >= stmt.excluded.window_start, current),
                else_=stmt.excluded.window_start,
            ),
        },
    ).returning(RateCounter.key, RateCounter.count, RateCounter.window_start)
    return [
        (str(key), int(count), int(window_start))
        for key, count, window_start in (await session.execute(stmt)).all()
    ]


async def delete_stale(session: AsyncSession, *, before: float) -> None:
    """Delete the counters of windows that started before `before` (a Unix time)."""
    await session.execute(delete(RateCounter).where(RateCounter.window_start < before))
