"""Fixed-window rate limits kept in the database, so they hold across API replicas.

One row per limited key in `rate_counter`. A hit is one upsert that either adds one to
the current window or starts a new one, and returns the count (its SQL is in
repository). Keys are keyed hashes, so the table never holds an address or an
IP in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.settings import RateLimit
from app.throttle import repository as ratelimit_repository

# Rows of windows that ended this long ago are deleted now and then.
_STALE_SECONDS = 2 * 86400
_CLEANUP_ONE_IN = 200


def counter_key(scope: str, value: str, secret: bytes) -> str:
    digest = hmac.new(secret, f"{scope}|{value}".encode(), hashlib.sha256).hexdigest()
    return f"{scope}:{digest[:40]}"


async def hit(session: AsyncSession, hits: Sequence[tuple[str, RateLimit]]) -> int | None:
    """Count one request under each key; None when every limit allows it, else the
    seconds until the window of the furthest limit that is exceeded ends.

    One statement for all the keys: a subscribe request counts its client and its address
    in one round trip. Rows are written in key order, so two requests that share keys
    lock them in the same order and never deadlock.
    """
    now = utcnow().timestamp()
    limits = dict(hits)
    rows = [
        {"key": key, "window_start": int(now // limit.seconds) * limit.seconds, "count": 1}
        for key, limit in sorted(limits.items())
    ]
    counted = await ratelimit_repository.count_hits(session, rows)
    retry: int | None = None
    for key, count, window_start in counted:
        limit = limits[key]
        if count > limit.count:
            wait = max(1, math.ceil(window_start + limit.seconds - now))
            retry = max(retry or 0, wait)
    if random.randrange(_CLEANUP_ONE_IN) == 0:
        await ratelimit_repository.delete_stale(session, before=now - _STALE_SECONDS)
    return retry


async def hit_alone(
    sessionmaker: async_sessionmaker[AsyncSession], hits: Sequence[tuple[str, RateLimit]]
) -> int | None:
    """`hit` in a transaction of its own, committed at once.

    The counter rows are locked only for the length of this one statement, not for the
    whole request: inside the request's transaction every request from one client (or
    every request behind one proxy) would queue behind the previous one's commit. Call it
    before the request's own session has run a query, so a request never holds two pooled
    connections at once (under load, requests holding one and waiting for a second would
    exhaust the pool).
    """
    async with unit_of_work(sessionmaker) as session:
        return await hit(session, hits)
