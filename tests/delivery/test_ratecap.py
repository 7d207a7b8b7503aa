"""The shared send caps on the real databases: SEND_RATE holds for several workers together,
DOMAIN_RATES and WARMUP answer at once (never wait) and hold for every worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery.ratecap import RateCap
from app.kit.clock import set_clock
from app.models import SendQuota, SendWarmup
from app.settings import Settings

Maker = async_sessionmaker[AsyncSession]
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The house clock, standing still at `now` until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock(NOON)
    set_clock(lambda: clock.now)
    yield clock
    set_clock(None)


async def quota_names(sessionmaker: Maker) -> list[str]:
    async with sessionmaker() as session:
        return list((await session.execute(select(SendQuota.name))).scalars().all())


async def test_two_workers_together_stay_under_the_global_rate(
    sessionmaker: Maker, faulty_settings: Callable[..., Settings]
) -> None:
    settings = faulty_settings(send_rate=25)
    workers = [RateCap(settings, sessionmaker), RateCap(settings, sessionmaker)]
    taken = 50

    async def take(cap: RateCap, count: int) -> None:
        for _ in range(count):
            # SEND_RATE is waited for: every message gets through, at the rate.
            assert await cap.try_acquire("reader@example.com", "news@example.com") is None

    started = time.monotonic()
    await asyncio.gather(*(take(cap, taken // 2) for cap in workers))
    elapsed = time.monotonic() - started
    # Lower bound only: the first bursts (a fifth of a second each) may go at once.
    assert elapsed >= (taken - 2 * 5) / 25 * 0.8
    assert await quota_names(sessionmaker) == ["global"]


async def test_a_capped_domain_answers_at_once_and_spreads_what_it_holds_back(
    sessionmaker: Maker, faulty_settings: Callable[..., Settings], clock: Clock
) -> None:
    cap = RateCap(faulty_settings(domain_rates="slow.example=10"), sessionmaker)
    for _ in range(5):  # uncapped: no bucket
        assert await cap.try_acquire("someone@fast.example", "news@example.com") is None
    # A new bucket starts empty: held back, without waiting, until it is about full (it
    # holds a second of sends), and the claim leaves the domain alone until then.
    first = await cap.try_acquire("someone@SLOW.example", "news@example.com")
    assert first is not None
    assert first.reason == "held back: slow.example is at its DOMAIN_RATES rate"
    assert first.wait == pytest.approx(0.9)
    # Each further one is due a token later than the one before, not all at once.
    later = [await cap.try_acquire(f"r{i}@slow.example", "n@example.com") for i in range(3)]
    assert [c.wait if c else None for c in later] == pytest.approx([1.0, 1.1, 1.2])
    held = cap.held()
    assert held.recipient_domains == {"slow.example"}
    assert held.from_domains == set()
    assert held.lifts_in == pytest.approx(0.9)
    # Other domains still go while it is held.
    assert await cap.try_acquire("someone@fast.example", "news@example.com") is None

    clock.move(seconds=1)  # a full bucket: ten
    assert cap.held().recipient_domains == set()
    granted = [await cap.try_acquire("x@slow.example", "n@example.com") for _ in range(11)]
    assert [g is None for g in granted] == [True] * 10 + [False]
    assert await quota_names(sessionmaker) == ["domain:slow.example"]


async def test_no_cap_means_no_database_round_trip(
    sessionmaker: Maker, faulty_settings: Callable[..., Settings]
) -> None:
    cap = RateCap(faulty_settings(), sessionmaker)
    assert not cap.enabled
    for _ in range(1000):
        assert await cap.try_acquire("a@example.com", "news@example.com") is None
    assert cap.held().lifts_in is None
    assert await quota_names(sessionmaker) == []


async def test_a_bucket_refills_by_the_time_on_the_house_clock(
    sessionmaker: Maker, faulty_settings: Callable[..., Settings], clock: Clock
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(SendQuota(name="global", tokens=0.0, refilled_at=NOON.timestamp()))
    clock.move(seconds=100)
    cap = RateCap(faulty_settings(send_rate=10), sessionmaker)
    # 100 s after the bucket was emptied it is full again: a fifth of a second of sends.
    assert await cap.try_acquire("reader@example.com", "news@example.com") is None
    assert await cap.try_acquire("reader@example.com", "news@example.com") is None
    async with sessionmaker() as session:
        row = (await session.execute(select(SendQuota.tokens, SendQuota.refilled_at))).one()
    assert tuple(row) == (0.0, clock.now.timestamp())


async def granted_until_capped(cap: RateCap, sender: str) -> int:
    for granted in range(10_000):
        if await cap.try_acquire(f"r{granted}@example.org", sender) is not None:
            return granted
    raise AssertionError("never capped")


async def test_warmup_caps_each_from_domain_per_day_for_every_worker_together(
    sessionmaker: Maker, faulty_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = faulty_settings(warmup="30,100,250")
    workers = [RateCap(settings, sessionmaker), RateCap(settings, sessionmaker)]
    day_one = await asyncio.gather(
        *(granted_until_capped(cap, "news@new.example") for cap in workers)
    )
    assert sum(day_one) == 30
    capped = await workers[0].try_acquire("r@example.org", "News@New.example")
    assert capped is not None
    assert capped.reason == "held back: new.example sent its WARMUP cap for today"
    assert capped.wait == pytest.approx(12 * 3600)  # until the next UTC midnight
    held = workers[0].held()
    assert held.from_domains == {"new.example"}
    assert held.lifts_in == pytest.approx(12 * 3600)
    # Another From domain has a day of its own.
    assert await workers[0].try_acquire("r@example.org", "news@other.example") is None

    clock.move(hours=12)  # midnight: day two of new.example
    assert workers[0].held().from_domains == set()
    day_two = await asyncio.gather(
        *(granted_until_capped(cap, "news@new.example") for cap in workers)
    )
    assert sum(day_two) == 100
    clock.move(days=5)  # past the schedule: its last figure holds
    day_seven = await asyncio.gather(
        *(granted_until_capped(cap, "news@new.example") for cap in workers)
    )
    assert sum(day_seven) == 250
    async with sessionmaker() as session:
        rows = (await session.execute(select(SendWarmup).order_by(SendWarmup.domain))).scalars()
        counts = [(r.domain, r.first_day, r.day, r.sent) for r in rows]
    first, today = NOON.date(), clock.now.date()
    assert counts == [
        ("new.example", first, today, 250),
        ("other.example", first, first, 1),
    ]


async def test_warmup_and_a_domain_rate_together_take_nothing_from_a_held_back_message(
    sessionmaker: Maker, faulty_settings: Callable[..., Settings], clock: Clock
) -> None:
    cap = RateCap(faulty_settings(warmup="3", domain_rates="slow.example=10"), sessionmaker)
    # The recipient domain has no token yet: the day's count is left untouched.
    for _ in range(5):
        assert await cap.try_acquire("r@slow.example", "news@new.example") is not None
    assert await granted_until_capped(cap, "news@new.example") == 3
