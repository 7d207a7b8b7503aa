"""The shared token buckets: the rate holds for several workers together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery.ratecap import RateCap
from app.kit.clock import set_clock
from app.models import SendQuota
from app.settings import Settings


async def test_two_workers_together_stay_under_the_global_rate(
    sessionmaker: async_sessionmaker[AsyncSession], faulty_settings: Callable[..., Settings]
) -> None:
    settings = faulty_settings(send_rate=25)
    workers = [RateCap(settings, sessionmaker), RateCap(settings, sessionmaker)]
    taken = 50

    async def take(cap: RateCap, count: int) -> None:
        for _ in range(count):
            await cap.acquire("reader@example.com")

    started = time.monotonic()
    await asyncio.gather(*(take(cap, taken // 2) for cap in workers))
    elapsed = time.monotonic() - started
    # Lower bound only: the first bursts (a fifth of a second each) may go at once.
    assert elapsed >= (taken - 2 * 5) / 25 * 0.8
    async with sessionmaker() as session:
        names = (await session.execute(select(SendQuota.name))).scalars().all()
    assert names == ["global"]


async def test_a_capped_domain_has_its_own_bucket(
    sessionmaker: async_sessionmaker[AsyncSession], faulty_settings: Callable[..., Settings]
) -> None:
    cap = RateCap(faulty_settings(domain_rates="slow.example=10"), sessionmaker)
    for _ in range(5):
        await cap.acquire("someone@fast.example")  # uncapped: no bucket
    started = time.monotonic()
    for _ in range(12):
        await cap.acquire("someone@SLOW.example")
    slow = time.monotonic() - started
    assert slow >= (12 - 2) / 10 * 0.8
    async with sessionmaker() as session:
        names = (await session.execute(select(SendQuota.name))).scalars().all()
    assert names == ["domain:slow.example"]


async def test_no_cap_means_no_database_round_trip(
    sessionmaker: async_sessionmaker[AsyncSession], faulty_settings: Callable[..., Settings]
) -> None:
    cap = RateCap(faulty_settings(), sessionmaker)
    assert not cap.enabled
    for _ in range(1000):
        await cap.acquire("a@example.com")
    async with sessionmaker() as session:
        assert (await session.execute(select(SendQuota.name))).scalars().all() == []


async def test_a_bucket_refills_by_the_time_on_the_house_clock(
    sessionmaker: async_sessionmaker[AsyncSession], faulty_settings: Callable[..., Settings]
) -> None:
    emptied = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    later = emptied + timedelta(seconds=100)
    async with sessionmaker() as session, session.begin():
        session.add(SendQuota(name="global", tokens=0.0, refilled_at=emptied.timestamp()))
    set_clock(lambda: later)
    try:
        cap = RateCap(faulty_settings(send_rate=10), sessionmaker)
        # 100 s after the bucket was emptied it is full again: a fifth of a second of sends.
        await cap.acquire("reader@example.com")
        await cap.acquire("reader@example.com")
    finally:
        set_clock(None)
    async with sessionmaker() as session:
        row = (await session.execute(select(SendQuota.tokens, SendQuota.refilled_at))).one()
    assert tuple(row) == (0.0, later.timestamp())
