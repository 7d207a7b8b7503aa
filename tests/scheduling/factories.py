"""Plain async factories for the scheduling tests."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Delivery,
    Issue,
    IssueStatus,
    Newsletter,
    ScheduleTick,
    Story,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)

_counter = itertools.count(1)


async def create_newsletter(
    session: AsyncSession,
    *,
    cron: str | None = "0 9 * * MON",
    timezone: str = "UTC",
    checked_at: datetime | None = None,
    auto_send_upcoming: bool = False,
    slug: str | None = None,
    subscribers: int = 2,
) -> Newsletter:
    n = next(_counter)
    newsletter = Newsletter(
        slug=slug or f"weekly-{n}",
        name=f"Weekly {n}",
        from_name="The Editors",
        from_email="editors@example.com",
        postal_address="1 Main Street, Springfield",
        double_opt_in=False,
        schedule_cron=cron,
        timezone=timezone,
        auto_send_upcoming=auto_send_upcoming,
        schedule_checked_at=checked_at,
    )
    session.add(newsletter)
    await session.flush()
    for i in range(subscribers):
        subscriber = Subscriber(email=f"reader{i}.{n}@example.com", name=f"Reader {i}")
        session.add(subscriber)
        await session.flush()
        session.add(
            Subscription(
                newsletter_id=newsletter.id,
                subscriber_id=subscriber.id,
                status=SubscriptionStatus.active.value,
                source="api",
            )
        )
    await session.flush()
    return newsletter


async def create_issue(
    session: AsyncSession,
    newsletter: Newsletter,
    *,
    status: IssueStatus = IssueStatus.draft,
    stories: int = 1,
    ready_at: datetime | None = None,
    scheduled_at: datetime | None = None,
    subject: str | None = None,
) -> Issue:
    number = (
        await session.execute(
            select(func.coalesce(func.max(Issue.number), 0)).where(
                Issue.newsletter_id == newsletter.id
            )
        )
    ).scalar_one() + 1
    issue = Issue(
        newsletter_id=newsletter.id,
        number=number,
        subject=subject or f"Issue {number}",
        status=status.value,
        ready_at=ready_at,
        scheduled_at=scheduled_at,
    )
    session.add(issue)
    await session.flush()
    for position in range(stories):
        session.add(
            Story(
                issue_id=issue.id,
                position=position,
                title=f"Story {position + 1}",
                body="Something happened this week.",
                url=f"https://example.com/story/{position + 1}",
            )
        )
    await session.flush()
    return issue


async def issue_status(session: AsyncSession, issue_id: int) -> str:
    return str(
        (await session.execute(select(Issue.status).where(Issue.id == issue_id))).scalar_one()
    )


async def delivery_count(session: AsyncSession, issue_id: int) -> int:
    return int(
        (
            await session.execute(
                select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
            )
        ).scalar_one()
    )


async def ticks(
    session: AsyncSession, newsletter_id: int
) -> list[tuple[datetime, str, int | None]]:
    result = await session.execute(
        select(ScheduleTick.tick_at, ScheduleTick.outcome, ScheduleTick.issue_id)
        .where(ScheduleTick.newsletter_id == newsletter_id)
        .order_by(ScheduleTick.tick_at)
    )
    return [(row[0], row[1], row[2]) for row in result]
