"""When a sending issue becomes `sent`: the store's finish check on the real database.

The check first looks for the issue's newest queued delivery (one index probe while a
send runs), so these cases make sure the rows it does not look at first still count: a
queued retry older than every sent row, a row in flight, another issue's queued rows.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.sqlstore import SqlStore
from app.kit.db import unit_of_work
from app.models import Delivery, Issue, Subscription
from tests.factories import create_issue, create_newsletter, create_readers

Maker = async_sessionmaker[AsyncSession]


async def _issues_with(sessionmaker: Maker, *lists: list[str]) -> list[int]:
    """One sending issue per list, its deliveries in that order (ids rising) and status."""
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session, slug="weekly", double_opt_in=False)
        await create_readers(session, newsletter, max(len(statuses) for statuses in lists))
        subscriptions = list(
            (await session.execute(select(Subscription.id).order_by(Subscription.id))).scalars()
        )
        issue_ids = []
        for statuses in lists:
            issue = await create_issue(session, newsletter, status="sending")
            for subscription_id, status in zip(subscriptions, statuses, strict=False):
                session.add(
                    Delivery(issue_id=issue.id, subscription_id=subscription_id, status=status)
                )
                await session.flush()  # one row at a time: ids rise in list order
            issue_ids.append(issue.id)
        return issue_ids


async def _status(sessionmaker: Maker, issue_id: int) -> str:
    async with sessionmaker() as session:
        issue = await session.get(Issue, issue_id)
        assert issue is not None
        return issue.status


@pytest.mark.parametrize(
    ("statuses", "finished"),
    [
        (["sent", "failed", "bounced", "skipped", "cancelled"], True),
        (["queued", "sent", "sent", "sent"], False),  # a retry, older than every sent row
        (["sent", "sent", "sending", "sent"], False),  # one still in flight
        (["sent", "sent", "sent", "queued"], False),
    ],
)
async def test_an_issue_is_sent_only_when_no_delivery_is_queued_or_in_flight(
    engine: AsyncEngine, sessionmaker: Maker, statuses: list[str], finished: bool
) -> None:
    [issue_id] = await _issues_with(sessionmaker, statuses)

    assert await SqlStore(engine, sessionmaker).finish_issues([issue_id]) == int(finished)
    assert await _status(sessionmaker, issue_id) == ("sent" if finished else "sending")


async def test_another_issues_queued_rows_neither_hold_nor_finish_an_issue(
    engine: AsyncEngine, sessionmaker: Maker
) -> None:
    done, running = await _issues_with(sessionmaker, ["sent", "sent"], ["sent", "queued"])

    assert await SqlStore(engine, sessionmaker).finish_issues([done, running]) == 1
    assert await _status(sessionmaker, done) == "sent"
    assert await _status(sessionmaker, running) == "sending"
