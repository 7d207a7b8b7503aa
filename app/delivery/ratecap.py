"""SEND_RATE for all workers together: token buckets kept in the `send_quota` table.

Each bucket is one row (`global`, and `domain:<name>` for capped recipient domains). A
worker takes a handful of tokens at a time in one short transaction that first refills
the bucket by the time elapsed since the last take, so the rate holds however many
workers share it, and a worker spends its tokens locally without touching the database
per message. Tokens a worker took but did not use (it stopped) are simply lost: that
only ever lowers the rate.
"""

from __future__ import annotations

import asyncio
import math

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery import quota_repository
from app.kit.clock import utcnow
from app.settings import Settings

GLOBAL = "global"

# One lock per bucket name in this process. PostgreSQL serialises takes across processes
# with SELECT ... FOR UPDATE; SQLite has no row locks (and runs one worker process), so
# two takes racing in one process could both spend the same tokens without this.
_LOCKS: dict[str, asyncio.Lock] = {}


def _lock_for(name: str) -> asyncio.Lock:
    return _LOCKS.setdefault(name, asyncio.Lock())


class Bucket:
    """This worker's view of one shared bucket."""

    def __init__(
        self, name: str, rate: float, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self.name = name
        self.rate = rate
        # The bucket holds at most a fifth of a second of sends (at least one), and a
        # worker takes at most that much at once, so bursts stay small.
        self.capacity = max(1.0, rate * 0.2)
        self.sessionmaker = sessionmaker
        self.local = 0
        self.lock = _lock_for(name)

    async def acquire(self) -> None:
        async with self.lock:
            while self.local < 1:
                granted, wait = await self._take(math.ceil(self.capacity))
                self.local += granted
                if self.local < 1:
                    await asyncio.sleep(wait)
            self.local -= 1

    async def _take(self, want: int) -> tuple[int, float]:
        """Take up to `want` tokens; (granted, seconds until the next one is due)."""
        async with self.sessionmaker() as session, session.begin():
            # Wall-clock seconds (every worker's clock, stored in the row), from kit.clock
            # so a test can move time.
            now = utcnow().timestamp()
            bucket = await quota_repository.lock_bucket(session, self.name)
            if bucket is None:
                await quota_repository.create_bucket(session, self.name, now)
                return 0, 1.0 / self.rate
            tokens, refilled_at = bucket
            available = min(self.capacity, tokens + max(0.0, now - refilled_at) * self.rate)
            granted = max(0, min(want, math.floor(available)))
            await quota_repository.store_bucket(
                session, self.name, available - granted, max(now, refilled_at)
            )
        wait = max(0.005, (1 - (available - granted)) / self.rate)
        return granted, wait


class RateCap:
    """The global cap and the per-domain caps; a no-op when neither is set."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.global_bucket = (
            Bucket(GLOBAL, settings.send_rate, sessionmaker) if settings.send_rate > 0 else None
        )
        self.domains = {
            domain: Bucket(f"domain:{domain}", rate, sessionmaker)
            for domain, rate in settings.domain_rate_caps.items()
            if rate > 0
        }
        self.enabled = self.global_bucket is not None or bool(self.domains)

    async def acquire(self, email: str) -> None:
        if not self.enabled:
            return
        if self.domains:
            bucket = self.domains.get(email.rpartition("@")[2].lower())
            if bucket is not None:
                await bucket.acquire()
        if self.global_bucket is not None:
            await self.global_bucket.acquire()
