"""Plain async factories for delivery tests: a newsletter, readers, an issue with stories."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import Issue, Newsletter, Story, Subscriber, Subscription


async def create_newsletter(session: AsyncSession, *, slug: str = "weekly") -> Newsletter:
    newsletter = Newsletter(
        slug=slug,
        name="The Weekly",
        description="",
        from_name="The Weekly",
        from_email="news@example.org",
        postal_address="1 Main Street, Springfield",
        double_opt_in=False,
        timezone="UTC",
        track_opens=False,
        track_clicks=False,
        template="default",
        auto_send_upcoming=False,
    )
    session.add(newsletter)
    await session.flush()
    return newsletter


async def create_readers(
    session: AsyncSession,
    newsletter: Newsletter,
    count: int,
    *,
    status: str = "active",
    prefix: str = "reader",
) -> list[str]:
    """`count` subscribers of the newsletter, inserted in bulk; their addresses."""
    now = utcnow()
    emails = [f"{prefix}{i}@example.com" for i in range(count)]
    for start in range(0, count, 5000):
        chunk = emails[start : start + 5000]
        result = await session.execute(
            insert(Subscriber).returning(Subscriber.id),
            [
                {
                    "email": e,
                    "name": f"Reader {i}",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i, e in enumerate(chunk, start)
            ],
        )
        ids = [row[0] for row in result.all()]
        await session.execute(
            insert(Subscription),
            [
                {
                    "newsletter_id": newsletter.id,
                    "subscriber_id": sid,
                    "status": status,
                    "source": "api",
                    "requested_at": now,
                    "soft_bounces": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for sid in ids
            ],
        )
    return emails


async def create_issue(
    session: AsyncSession, newsletter: Newsletter, *, number: int = 1, stories: int = 2
) -> Issue:
    issue = Issue(
        newsletter_id=newsletter.id,
        number=number,
        subject=f"Issue {number}: the week in review",
        preheader="What happened",
        intro="Hello, this week:",
        outro="See you next week.",
        status="draft",
    )
    session.add(issue)
    await session.flush()
    for position in range(stories):
        session.add(
            Story(
                issue_id=issue.id,
                position=position,
                title=f"Story {position}",
                body=f"Body of story {position}.",
                url=f"https://example.net/story/{position}",
            )
        )
    await session.flush()
    return issue


async def seed(
    sessionmaker: async_sessionmaker[AsyncSession], readers: int, *, slug: str = "weekly"
) -> tuple[int, int, list[str]]:
    """A newsletter with `readers` active readers and a draft issue: (newsletter, issue, emails)."""
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session, slug=slug)
        emails = await create_readers(session, newsletter, readers)
        issue = await create_issue(session, newsletter)
        return newsletter.id, issue.id, emails
