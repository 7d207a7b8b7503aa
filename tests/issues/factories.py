"""Plain async factories for issues, newsletters and subscriptions (shared by the
rendering, issues and tracking tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Issue, Newsletter, Story, Subscriber, Subscription

POSTAL = "Broadsheet Ltd\n1 Fleet Street\nLondon EC4Y 1AA"

INTRO = "Welcome to **this week's** issue. Read [our guide](https://example.com/guide?a=1&b=2)."
BODY = (
    "Researchers published *new findings* on Tuesday, with [the full paper]"
    "(https://example.org/paper) and a summary.\n\n"
    "- the first point\n- the second point\n\n"
    "> A quote from someone involved.\n"
)


def story_values(i: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "title": f"Story {i + 1}: something worth reading",
        "body": BODY,
        "url": f"https://example.org/stories/{i + 1}",
        "source": "The Example Times",
        "image_url": f"https://img.example.org/{i + 1}.jpg" if i % 2 == 0 else None,
        "image_alt": f"Picture for story {i + 1}" if i % 4 == 0 else None,
    }
    values.update(overrides)
    return values


async def create_newsletter(session: AsyncSession, **overrides: Any) -> Newsletter:
    values: dict[str, Any] = {
        "slug": "weekly",
        "name": "The Weekly",
        "from_name": "The Weekly Desk",
        "from_email": "desk@news.example.com",
        "reply_to": "editor@news.example.com",
        "postal_address": POSTAL,
        "double_opt_in": True,
        "timezone": "UTC",
        "track_opens": False,
        "track_clicks": False,
        "template": "default",
    }
    values.update(overrides)
    newsletter = Newsletter(**values)
    session.add(newsletter)
    await session.commit()
    return newsletter


async def create_issue(
    session: AsyncSession,
    newsletter: Newsletter,
    *,
    stories: int = 3,
    story_overrides: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> tuple[Issue, list[Story]]:
    number = (
        await session.execute(
            select(func.coalesce(func.max(Issue.number), 0) + 1).where(
                Issue.newsletter_id == newsletter.id
            )
        )
    ).scalar_one()
    values: dict[str, Any] = {
        "newsletter_id": newsletter.id,
        "number": number,
        "subject": "This week: findings, quotes & more",
        "preheader": "Five minutes of reading for your Monday",
        "intro": INTRO,
        "outro": "Thanks for reading. *Reply* to tell us what you think.",
        "status": "draft",
    }
    values.update(overrides)
    issue = Issue(**values)
    session.add(issue)
    await session.flush()
    rows = []
    for i in range(stories):
        extra = (story_overrides or [{}] * stories)[i] if story_overrides else {}
        row = Story(issue_id=issue.id, position=i, **story_values(i, **extra))
        session.add(row)
        rows.append(row)
    await session.commit()
    return issue, rows


async def create_subscription(
    session: AsyncSession,
    newsletter: Newsletter,
    email: str,
    name: str = "",
    status: str = "active",
) -> Subscription:
    subscriber = Subscriber(email=email, name=name, attributes={})
    session.add(subscriber)
    await session.flush()
    subscription = Subscription(
        newsletter_id=newsletter.id, subscriber_id=subscriber.id, status=status, source="api"
    )
    session.add(subscription)
    await session.commit()
    return subscription
