"""The send caps, shared by every worker through the database (SPEC sections 7 and 13).

- SEND_RATE: one token bucket (`global` in `send_quota`) for all mail. A sender waits for
  its token: the cap applies to every message alike, so waiting holds no other mail back.
- DOMAIN_RATES: one bucket per capped recipient domain (`domain:<name>`), never waited
  for. A delivery whose domain has no token goes back to the queue, due when its turn
  comes, without holding a connection, and the claimer leaves that domain's deliveries
  in the queue until the bucket is about full again, so other mail sends on at full
  speed.
- WARMUP (`warmup.py`): daily caps per From domain, held back the same way until the
  next UTC midnight.

A worker takes a handful of tokens at a time in one short transaction that first refills
the bucket by the time elapsed since the last take, so the rate holds however many
workers share it, and a worker spends its tokens locally without touching the database
per message. Tokens a worker took but did not use (it stopped) are simply lost: that
only ever lowers the rate.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery import quota_repository
from app.delivery.warmup import Warmup
from app.kit.clock import utcnow
from app.settings import Settings

GLOBAL = "global"

# One lock per bucket name in this process. PostgreSQL serialises takes across processes
# with SELECT ... FOR UPDATE; SQLite has no row locks (and runs one worker process), so
# two takes racing in one process could both spend the same tokens without this.
_LOCKS: dict[str, asyncio.Lock] = {}


def _lock_for(name: str) -> asyncio.Lock:
    return _LOCKS.setdefault(name, asyncio.Lock())


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class Capped:
    """A message that may not go yet: try it again in `wait` seconds (nothing was taken)."""

    wait: float
    reason: str


@dataclass(frozen=True, slots=True)
class Hold:
    """What the claimer leaves in the queue for now.

    Recipient domains without a token, From domains whose day is used up, and the seconds
    until the first of them may send again (None when nothing is held).
    """

    recipient_domains: frozenset[str] = frozenset()
    from_domains: frozenset[str] = frozenset()
    lifts_in: float | None = None


class Bucket:
    """This worker's view of one shared bucket."""

    def __init__(
        self,
        name: str,
        rate: float,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        burst: float = 0.2,
    ) -> None:
        self.name = name
        self.rate = rate
        # The bucket holds at most `burst` seconds of sends (at least one), and a worker
        # takes at most that much at once, so bursts stay small.
        self.capacity = max(1.0, rate * burst)
        self.sessionmaker = sessionmaker
        self.local = 0
        # Wall-clock seconds before which the shared bucket is known to be empty, so a
        # held-back delivery is answered without a database round trip.
        self.empty_until = 0.0
        # Where this worker's next held-back delivery is due (wall-clock seconds): they
        # come due one token apart instead of all at once.
        self.next_turn = 0.0
        self.lock = _lock_for(name)

    async def acquire(self) -> None:
        """Wait for a token and take it."""
        async with self.lock:
            while self.local < 1:
                granted, wait = await self._take(math.ceil(self.capacity))
                self.local += granted
                if self.local < 1:
                    await asyncio.sleep(wait)
            self.local -= 1

    async def ready(self) -> float:
        """0.0 when a token is in hand (not taken: the caller takes it), else the seconds
        the domain is held back; never waits."""
        if self.local >= 1:
            return 0.0
        now = utcnow().timestamp()
        if now < self.empty_until:
            return self.empty_until - now
        async with self.lock:
            if self.local < 1:
                granted, wait = await self._take(math.ceil(self.capacity))
                self.local += granted
                if self.local < 1:
                    # Held back until the bucket is about full again, not just until its
                    # next token: the claim skips the domain meanwhile, and then takes
                    # a bucketful's worth of its deliveries at once.
                    wait = max(wait, (self.capacity - 1) / self.rate)
                    self.empty_until = utcnow().timestamp() + wait
                    return wait
        return 0.0

    def turn(self, wait: float) -> float:
        """Seconds until a held-back delivery is due: the next free turn of this worker."""
        now = utcnow().timestamp()
        due = max(self.next_turn, now + wait)
        self.next_turn = due + 1.0 / self.rate
        return due - now

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
    """SEND_RATE, DOMAIN_RATES and WARMUP; a no-op when none is set."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.global_bucket = (
            Bucket(GLOBAL, settings.send_rate, sessionmaker) if settings.send_rate > 0 else None
        )
        # A recipient domain's bucket holds a second of sends ("50 a second" allows 50 in
        # any one second), and a domain that ran dry is held back until it is about full:
        # the claim that skips it reads every queued row of the send, so it runs about
        # once a second per worker this way, not once per token.
        self.domains = {
            domain: Bucket(f"domain:{domain}", rate, sessionmaker, burst=1.0)
            for domain, rate in settings.domain_rate_caps.items()
            if rate > 0
        }
        caps = settings.warmup_caps
        self.warmup = Warmup(caps, sessionmaker) if caps else None
        self.enabled = (
            self.global_bucket is not None or bool(self.domains) or self.warmup is not None
        )

    async def try_acquire(self, email: str, sender: str) -> Capped | None:
        """Take what a message from `sender` to `email` needs, or say why it may not go.

        None: it may go now (after waiting for SEND_RATE's token, when it is set). Capped:
        its recipient domain has no token or its From domain sent its day's cap; nothing
        was taken, and it is due again after `wait` seconds.
        """
        if self.domains or self.warmup is not None:
            capped = await self._try_caps(email, sender)
            if capped is not None:
                return capped
        if self.global_bucket is not None:
            await self.global_bucket.acquire()
        return None

    def held(self) -> Hold:
        """The domains over their cap right now, for the claim to skip."""
        now = utcnow()
        stamp = now.timestamp()
        recipients = {
            d: b.empty_until - stamp for d, b in self.domains.items() if b.empty_until > stamp
        }
        senders = {
            d: (until - now).total_seconds()
            for d, until in (self.warmup.held(now) if self.warmup else {}).items()
        }
        if not recipients and not senders:
            return Hold()
        return Hold(
            frozenset(recipients),
            frozenset(senders),
            min([*recipients.values(), *senders.values()]),
        )

    async def _try_caps(self, email: str, sender: str) -> Capped | None:
        bucket = self.domains.get(domain_of(email))
        warmup = self.warmup
        from_domain = domain_of(sender) if warmup is not None else ""
        # A token in hand may be spent by another sender while this one awaits the next
        # check, so the last check and the taking happen together, without an await.
        for _ in range(3):
            if warmup is not None:
                wait = await warmup.ready(from_domain)
                if wait > 0:
                    return Capped(wait, f"held back: {from_domain} sent its WARMUP cap for today")
            if bucket is not None:
                wait = await bucket.ready()
                if wait > 0:
                    return _rate_capped(bucket, wait)
            if (warmup is None or warmup.has(from_domain)) and (
                bucket is None or bucket.local >= 1
            ):
                if warmup is not None:
                    warmup.spend(from_domain)
                if bucket is not None:
                    bucket.local -= 1
                return None
        if bucket is not None:
            return _rate_capped(bucket, 0.0)
        return Capped(0.1, "held back: its WARMUP share is being taken by other senders")


def _rate_capped(bucket: Bucket, wait: float) -> Capped:
    domain = bucket.name.removeprefix("domain:")
    return Capped(bucket.turn(wait), f"held back: {domain} is at its DOMAIN_RATES rate")
