"""Send caps in a running worker (real databases, a real SMTP server): a capped domain
waits in the queue, never in a sender, so the rest of the list sends on (SPEC section 13)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.kit.clock import set_clock
from app.kit.db import unit_of_work
from app.models import Delivery, SendWarmup, Subscriber, Subscription
from app.settings import Settings
from tests.delivery.conftest import running_worker, wait_until
from tests.delivery.faulty_smtp import FaultyServer
from tests.delivery.test_engine import delivery_counts, send, wait_for_status
from tests.factories import create_issue, create_newsletter, create_readers

Maker = async_sessionmaker[AsyncSession]


async def newsletter_with_issue(
    sessionmaker: Maker, slug: str, from_email: str, emails: list[str]
) -> int:
    """A newsletter sending from `from_email` to exactly `emails`, and its draft issue."""
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(
            session, slug=slug, from_email=from_email, double_opt_in=False
        )
        made = await create_readers(session, newsletter, len(emails), prefix=f"{slug}-")
        for old, new in zip(made, emails, strict=True):
            await session.execute(
                update(Subscriber).where(Subscriber.email == old).values(email=new)
            )
        issue = await create_issue(session, newsletter)
        return issue.id


async def rows_of(sessionmaker: Maker, issue_id: int) -> list[tuple[str, str, int, str]]:
    """(address, status, attempts, last reply) of each delivery of the issue."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_reply)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Delivery.issue_id == issue_id)
            .order_by(Delivery.id)
        )
        return [(r[0], r[1], r[2], r[3] or "") for r in rows.all()]


async def test_a_capped_domain_waits_in_the_queue_while_the_rest_sends_at_full_speed(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    # Half the list at gmail.test, five a second; the other half uncapped; interleaved.
    emails = [f"reader{i}@{'gmail.test' if i % 2 else 'example.com'}" for i in range(40)]
    issue_id = await newsletter_with_issue(sessionmaker, "weekly", "news@example.com", emails)
    await send(client, editor_headers, issue_id)
    settings = faulty_settings(domain_rates="gmail.test=5", smtp_pool_size=4)
    seen_held: list[tuple[str, str, int, str]] = []

    async def held_one_back() -> bool:
        seen_held.extend(
            row for row in await rows_of(sessionmaker, issue_id) if "DOMAIN_RATES" in row[3]
        )
        return bool(seen_held)

    async with running_worker(settings, engine):
        await wait_until(held_one_back)
        await wait_for_status(sessionmaker, issue_id, "sent")

    order = [rcpt for message in faulty.sink.messages for rcpt in message.rcpt_tos]
    assert Counter(order) == Counter(dict.fromkeys(emails, 1))
    last_other = max(i for i, rcpt in enumerate(order) if rcpt.endswith("@example.com"))
    # The uncapped half went out before the capped half got far: a sender waiting for a
    # gmail.test token (the old blocking cap) would have interleaved them all the way.
    assert sum(1 for rcpt in order[:last_other] if rcpt.endswith("@gmail.test")) <= 5
    # A held-back delivery went back to the queue without using an attempt.
    address, status, attempts, reply = seen_held[0]
    assert address.endswith("@gmail.test")
    assert (status, attempts) == ("queued", 0)
    assert reply == "held back: gmail.test is at its DOMAIN_RATES rate"
    assert {(s, a) for _, s, a, _ in await rows_of(sessionmaker, issue_id)} == {("sent", 1)}


class MovableClock:
    """The house clock running from `start` at real speed; `skip` jumps it ahead."""

    def __init__(self, start: datetime) -> None:
        self.offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def skip(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
def clock() -> Iterator[MovableClock]:
    clock = MovableClock(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    set_clock(clock.now)
    yield clock
    set_clock(None)


async def test_warmup_holds_a_new_from_domain_to_its_day_and_others_send_on(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    clock: MovableClock,
) -> None:
    new = [f"reader{i}@example.com" for i in range(10)]
    old = [f"reader{i}@example.org" for i in range(6)]
    new_issue = await newsletter_with_issue(sessionmaker, "fresh", "news@new.test", new)
    old_issue = await newsletter_with_issue(sessionmaker, "known", "news@known.test", old)
    async with unit_of_work(sessionmaker) as session:
        # known.test first sent a month ago: its day is the schedule's last, 100.
        start = date(2026, 11, 1)
        session.add(SendWarmup(domain="known.test", first_day=start, day=start, sent=90))
    await send(client, editor_headers, new_issue)
    await send(client, editor_headers, old_issue)

    async def new_domain_held() -> bool:
        counts = await delivery_counts(sessionmaker, new_issue)
        return counts == {"sent": 4, "queued": 6}

    async with running_worker(faulty_settings(warmup="4,100"), engine):
        await wait_for_status(sessionmaker, old_issue, "sent")  # its own count: all six
        await wait_until(new_domain_held)
        waiting = [row for row in await rows_of(sessionmaker, new_issue) if row[1] == "queued"]
        assert {(attempts, reply) for _, _, attempts, reply in waiting} == {
            (0, "held back: new.test sent its WARMUP cap for today")
        }
        async with sessionmaker() as session:
            due = (
                await session.execute(
                    select(Delivery.next_attempt_at).where(
                        Delivery.issue_id == new_issue, Delivery.status == "queued"
                    )
                )
            ).scalars()
            # Due at the next UTC midnight, give or take the moment the outcome was written.
            midnight = datetime(2026, 12, 2, tzinfo=UTC)
            assert all(abs((d - midnight).total_seconds()) < 5 for d in due if d is not None)
        assert len(faulty.sink.messages) == 10
        clock.skip(timedelta(days=1))  # the next day: new.test may send 100
        await wait_for_status(sessionmaker, new_issue, "sent")

    order = [rcpt for message in faulty.sink.messages for rcpt in message.rcpt_tos]
    assert Counter(order) == Counter(dict.fromkeys(new + old, 1))
    assert {(s, a) for _, s, a, _ in await rows_of(sessionmaker, new_issue)} == {("sent", 1)}
