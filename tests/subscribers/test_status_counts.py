"""The dashboard's counts per status, kept by database triggers (migration 0008), stay
exactly what a COUNT of the subscriptions says, whatever changed them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import Newsletter, Subscriber, Subscription, SubscriptionCount
from app.subscribers import count_repository, service
from app.subscribers.bounces import BounceKind, record_bounce
from app.subscribers.importer import import_csv
from tests.factories import create_gazette, create_newsletter, create_readers

BASE = "/api/v1/newsletters/weekly/subscribers"


async def real_counts(session: AsyncSession, newsletter: Newsletter) -> dict[str, int]:
    rows = await session.execute(
        select(Subscription.status, func.count())
        .where(Subscription.newsletter_id == newsletter.id)
        .group_by(Subscription.status)
    )
    return {str(status): int(n) for status, n in rows.all()}


async def assert_exact(
    sessionmaker: async_sessionmaker[AsyncSession], newsletter: Newsletter
) -> dict[str, int]:
    async with unit_of_work(sessionmaker) as session:
        shown = await service.status_counts(session, newsletter)
        real = await real_counts(session, newsletter)
    assert {k: v for k, v in shown.items() if k != "all" and v} == real
    assert shown["all"] == sum(real.values())
    return shown


async def delta_rows(session: AsyncSession, newsletter_id: int) -> int:
    query = select(func.count()).where(SubscriptionCount.newsletter_id == newsletter_id)
    return int(await session.scalar(query) or 0)


async def _subscription_id(session: AsyncSession, email: str) -> int:
    found = await session.scalar(
        select(Subscription.id).join(Subscriber).where(Subscriber.email == email)
    )
    assert found is not None
    return int(found)


async def test_counts_stay_exact_through_the_api(
    client: AsyncClient,
    editor_headers: dict[str, str],
    admin_headers: dict[str, str],
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    newsletter = await create_gazette(session)
    await create_readers(session, newsletter, 250)
    await create_readers(session, newsletter, 40, status="pending", prefix="waiting")
    await session.commit()
    assert (await assert_exact(sessionmaker, newsletter))["active"] == 250

    body = {"email": "ann@example.com", "consent": "paper form", "name": "Ann"}
    assert (await client.post(BASE, json=body, headers=editor_headers)).status_code == 201
    rows = "email\n" + "".join(f"imported{i}@example.com\n" for i in range(30))
    imported = await client.post(
        f"{BASE}/import",
        content=rows.encode(),
        headers={**editor_headers, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    counts = await assert_exact(sessionmaker, newsletter)
    assert counts["active"] == 281

    one = await _subscription_id(session, "reader1@example.com")
    patched = await client.patch(
        f"{BASE}/{one}", json={"status": "unsubscribed"}, headers=editor_headers
    )
    assert patched.status_code == 200, patched.text
    two = await _subscription_id(session, "reader2@example.com")
    assert (await client.delete(f"{BASE}/{two}", headers=editor_headers)).status_code == 204
    erased = await client.delete("/api/v1/subscribers/ann@example.com", headers=admin_headers)
    assert erased.status_code == 204
    counts = await assert_exact(sessionmaker, newsletter)
    assert (counts["active"], counts["unsubscribed"], counts["all"]) == (278, 1, 319)


async def test_counts_stay_exact_through_confirm_unsubscribe_bounces_and_import(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    newsletter = await create_gazette(session)
    await create_readers(session, newsletter, 20, status="pending", prefix="waiting")
    await create_readers(session, newsletter, 20)
    await session.commit()
    async with unit_of_work(sessionmaker) as s:
        pending = await _subscription_id(s, "waiting3@example.com")
        active = await _subscription_id(s, "reader4@example.com")
        await service.confirm(s, pending, ip="192.0.2.1", user_agent="test")
        await service.unsubscribe(s, active, detail="test")
        now = utcnow()
        await record_bounce(
            s, email="reader5@example.com", kind=BounceKind.hard, detail=None, now=now
        )
        await record_bounce(
            s, email="reader6@example.com", kind=BounceKind.complaint, detail=None, now=now
        )
        for _ in range(3):  # three soft bounces in a row suppress the address
            await record_bounce(
                s, email="reader7@example.com", kind=BounceKind.soft, detail=None, now=now
            )

    async def chunks() -> AsyncIterator[bytes]:
        yield b"email,name\n"
        yield b"".join(b"new%d@example.com,New\n" % i for i in range(120))
        yield b"reader8@example.com,Again\n"

    await import_csv(
        sessionmaker, chunks(), newsletter_id=newsletter.id, consent_text="test", batch_size=50
    )
    counts = await assert_exact(sessionmaker, newsletter)
    assert counts["pending"] == 19
    assert counts["bounced"] == 2
    assert counts["complained"] == 1
    assert counts["all"] == 160


async def test_cascades_keep_counts_exact_and_a_deleted_newsletter_takes_its_counts(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    kept = await create_gazette(session)
    gone = await create_newsletter(session, slug="gone", readers=30)
    # One person on both: deleting the person cascades to two newsletters' subscriptions.
    person = await session.scalar(select(Subscriber).where(Subscriber.email.like("gone-reader0@%")))
    assert person is not None
    session.add(
        Subscription(newsletter_id=kept.id, subscriber_id=person.id, status="active", source="api")
    )
    await session.commit()
    await session.execute(delete(Subscriber).where(Subscriber.id == person.id))
    await session.commit()
    assert (await assert_exact(sessionmaker, kept))["all"] == 0
    assert (await assert_exact(sessionmaker, gone))["active"] == 29

    await session.execute(delete(Newsletter).where(Newsletter.id == gone.id))
    await session.commit()
    assert await delta_rows(session, gone.id) == 0
    assert (await assert_exact(sessionmaker, kept))["all"] == 0


async def test_folding_keeps_the_totals_and_bounds_the_rows(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    newsletter = await create_gazette(session)
    await create_readers(session, newsletter, 60)
    await session.commit()
    ids = list((await session.scalars(select(Subscription.id))).all())
    # One statement per change: each appends rows (one per trigger call on PostgreSQL).
    for i in range(count_repository.FOLD_AT):
        status = "unsubscribed" if i % 2 == 0 else "active"
        await session.execute(
            update(Subscription).where(Subscription.id == ids[i % 60]).values(status=status)
        )
        await session.commit()
    assert await delta_rows(session, newsletter.id) > count_repository.FOLD_AT
    before = await assert_exact(sessionmaker, newsletter)  # this read folds
    assert await delta_rows(session, newsletter.id) <= 2
    assert await assert_exact(sessionmaker, newsletter) == before
    # A fold of nothing new changes nothing; zero sums leave no row.
    await session.execute(update(Subscription).values(status="pending"))
    await session.commit()
    async with unit_of_work(sessionmaker) as s:
        assert await count_repository.fold(s, newsletter.id)
    assert await delta_rows(session, newsletter.id) == 1
    assert (await assert_exact(sessionmaker, newsletter))["pending"] == 60


async def test_an_import_appends_a_row_per_statement_on_postgresql(
    db_kind: str, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    newsletter = await create_gazette(session)
    await session.commit()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"email\n" + b"".join(b"bulk%d@example.com\n" % i for i in range(3000))

    await import_csv(
        sessionmaker, chunks(), newsletter_id=newsletter.id, consent_text="test", batch_size=1000
    )
    rows = await delta_rows(session, newsletter.id)
    # PostgreSQL: statement-level triggers, one row per (statement, status): the import
    # writes multi-row INSERTs (a few per batch). SQLite: row-level, one per subscription.
    # (An executemany without RETURNING, like tests.factories.create_readers, is one
    # statement per row on asyncpg, so one row each there too; reads fold them.)
    if db_kind == "postgresql":
        assert rows <= 10
    else:
        assert rows == 3000
    assert (await assert_exact(sessionmaker, newsletter))["active"] == 3000
    assert await delta_rows(session, newsletter.id) <= (1 if rows > 100 else rows)


@pytest.mark.slow
async def test_concurrent_writers_and_folds_keep_counts_exact(
    db_kind: str, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    if db_kind != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    newsletter = await create_gazette(session)
    await create_readers(session, newsletter, 400)
    await session.commit()
    ids = list((await session.scalars(select(Subscription.id))).all())
    statuses = ["active", "unsubscribed", "bounced", "pending"]

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for step in range(40):
            async with unit_of_work(sessionmaker) as s:
                chosen = rng.sample(ids, 5)
                if step % 10 == 9:
                    await s.execute(delete(Subscription).where(Subscription.id == chosen[0]))
                await s.execute(
                    update(Subscription)
                    .where(Subscription.id.in_(chosen[1:]))
                    .values(status=rng.choice(statuses))
                )
                if step % 8 == 0:  # a reader that folds in the middle of a write
                    await count_repository.fold(s, newsletter.id)

    async def reader() -> None:
        for _ in range(30):
            async with unit_of_work(sessionmaker) as s:
                await service.status_counts(s, newsletter)
            await asyncio.sleep(0)

    results = await asyncio.gather(
        *(writer(seed) for seed in range(6)), reader(), reader(), return_exceptions=True
    )
    # A writer may lose a deadlock on subscription rows it updates (several at once, in
    # any order); the counts must still be exact, which is the point.
    assert all(r is None or "deadlock" in str(r) for r in results), results
    assert sum(r is None for r in results) >= 6
    await assert_exact(sessionmaker, newsletter)
    async with unit_of_work(sessionmaker) as s:
        await count_repository.fold(s, newsletter.id)
    await assert_exact(sessionmaker, newsletter)


async def test_truncating_the_subscriptions_empties_the_counts(
    db_kind: str, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    if db_kind != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (its DELETE fires the row triggers)")
    newsletter = await create_gazette(session)
    await create_readers(session, newsletter, 10)
    await session.commit()
    await session.execute(text("TRUNCATE subscription CASCADE"))
    await session.commit()
    assert await delta_rows(session, newsletter.id) == 0
    assert (await assert_exact(sessionmaker, newsletter))["all"] == 0
