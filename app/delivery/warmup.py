"""WARMUP: daily message caps for each From domain, counted from its first send.

A new sending domain earns its reputation slowly, so on its first UTC day it sends at most
the schedule's first figure, on the second day the second, and so on, the last figure
holding after. The count of each day lives in the `send_warmup` table, shared by every
worker. A worker takes a handful of the day's messages at a time in one short
transaction and spends them locally; what it took and did not send (it stopped) is lost
for the day, which only ever lowers the count. A From domain whose day is used up is
held back until the next UTC midnight; other From domains are not affected.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery import quota_repository
from app.kit.clock import utcnow

logger = logging.getLogger("broadsheet.delivery")

# At most this many of a day's messages taken at once (and at most 1% of the day's cap),
# so a worker that stops loses little and several workers share a small cap fairly.
TAKE_AT_MOST = 50

# One lock per From domain in this process, as for the rate cap's buckets: PostgreSQL
# serialises takes across processes with FOR UPDATE; SQLite (one worker process) would
# let two takes racing in one process both read the same count without it.
_LOCKS: dict[str, asyncio.Lock] = {}


def next_midnight(now: datetime) -> datetime:
    """The start of the next UTC day after `now`."""
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)


class _Sender:
    """This worker's share of one From domain's day."""

    def __init__(self, domain: str) -> None:
        self.day: date | None = None
        self.local = 0
        self.full_until: datetime | None = None  # the day is used up until then
        self.lock = _LOCKS.setdefault(domain, asyncio.Lock())


class Warmup:
    """The WARMUP schedule for every From domain this worker sends from."""

    def __init__(self, caps: list[int], sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.caps = caps
        self.sessionmaker = sessionmaker
        self.senders: dict[str, _Sender] = {}

    async def ready(self, domain: str) -> float:
        """0.0 when a message from `domain` may go today (`spend` takes it); else seconds
        until the next UTC midnight, when its next day starts."""
        sender = self.senders.get(domain) or self.senders.setdefault(domain, _Sender(domain))
        now = utcnow()
        if sender.day != now.date():
            sender.day, sender.local = now.date(), 0  # yesterday's messages are not today's
        if sender.local >= 1:
            return 0.0
        if sender.full_until is not None and now < sender.full_until:
            return (sender.full_until - now).total_seconds()
        async with sender.lock:
            if sender.local < 1:
                today = now.date()
                granted, cap = await self._take(domain, today)
                if sender.day == today:
                    sender.local += granted
                if sender.local < 1:
                    sender.full_until = next_midnight(now)
                    logger.info(
                        "From domain %s sent its WARMUP cap for today (%d); "
                        "its mail waits until %s UTC",
                        domain,
                        cap,
                        sender.full_until.strftime("%Y-%m-%d %H:%M"),
                    )
                    return (sender.full_until - now).total_seconds()
        return 0.0

    def spend(self, domain: str) -> None:
        self.senders[domain].local -= 1

    def has(self, domain: str) -> bool:
        sender = self.senders.get(domain)
        return sender is not None and sender.local >= 1

    def held(self, now: datetime) -> dict[str, datetime]:
        """The From domains whose day is used up, each with the moment it ends."""
        return {
            domain: sender.full_until
            for domain, sender in self.senders.items()
            if sender.full_until is not None and now < sender.full_until
        }

    def cap_on(self, first_day: date, today: date) -> int:
        """The day's cap: the schedule's figure for the day counted from the first send."""
        index = max(0, (today - first_day).days)
        return self.caps[min(index, len(self.caps) - 1)]

    async def _take(self, domain: str, today: date) -> tuple[int, int]:
        """Take some of the day's messages; (how many, the day's cap)."""
        async with self.sessionmaker() as session, session.begin():
            count = await quota_repository.lock_warmup(session, domain, today)
            cap = self.cap_on(count.first_day, today)
            sent = count.sent if count.day == today else 0
            want = max(1, min(TAKE_AT_MOST, cap // 100))
            granted = max(0, min(want, cap - sent))
            await quota_repository.store_warmup(session, domain, today, sent + granted)
        return granted, cap
