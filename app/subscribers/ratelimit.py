"""Fixed-window rate limits kept in the database, so they hold across API replicas.

One row per limited key in `rate_counter`. A hit is one upsert that either adds one to
the current window or starts a new one, and returns the count (SQLite 3.35+ and
PostgreSQL both support `INSERT .. ON CONFLICT DO UPDATE .. RETURNING`). Keys are keyed
hashes, so the table never holds an address or an IP in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from typing import Any

from sqlalchemy import case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.sql import dialect_name
from app.models import RateCounter
from app.settings import RateLimit

# Rows of windows that ended this long ago are deleted now and then.
_STALE_SECONDS = 2 * 86400
_CLEANUP_ONE_IN = 200


def counter_key(scope: str, value: str, secret: bytes) -> str:
    digest = hmac.new(secret, f"{scope}|{value}".encode(), hashlib.sha256).hexdigest()
    return f"{scope}:{digest[:40]}"


async def hit(session: AsyncSession, key: str, limit: RateLimit) -> int | None:
    """Count one request under `key`; None when allowed, else seconds until the window ends."""
    now = utcnow().timestamp()
    window = int(now // limit.seconds) * limit.seconds
    insert: Any = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    stmt = insert(RateCounter).values(key=key, window_start=window, count=1)
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
    ).returning(RateCounter.count, RateCounter.window_start)
    row = (await session.execute(stmt)).one()
    count, window_start = int(row[0]), int(row[1])
    if random.randrange(_CLEANUP_ONE_IN) == 0:
        await session.execute(
            delete(RateCounter).where(RateCounter.window_start < now - _STALE_SECONDS)
        )
    if count > limit.count:
        return max(1, math.ceil(window_start + limit.seconds - now))
    return None


async def hit_alone(
    sessionmaker: async_sessionmaker[AsyncSession], key: str, limit: RateLimit
) -> int | None:
    """`hit` in a transaction of its own, committed at once.

    The counter row is locked only for the length of this one statement, not for the
    whole request: inside the request's transaction every request from one client (or
    every request behind one proxy) would queue behind the previous one's commit.
    """
    async with unit_of_work(sessionmaker) as session:
        return await hit(session, key, limit)
