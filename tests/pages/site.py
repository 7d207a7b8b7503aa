"""A small site to look at: a newsletter with a realistic sent issue, and reader links.

Shared by the page tests (httpx) and the browser tests (a real server), so both look
at the same pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.links import confirm_token, unsubscribe_token
from app.kit.tokens import Signer
from app.models import Subscriber, Subscription
from tests.factories import create_issue, create_newsletter

# One unbroken 120-character word, as a pasted token or URL would be.
LONG_WORD = "Supercalifragilistic" * 6
LONG_URL = "https://example.org/" + "a-very-long-path-segment-" * 5


@dataclass(frozen=True)
class Site:
    slug: str
    issue_number: int
    confirm_path: str
    unsubscribe_path: str

    @property
    def archive_path(self) -> str:
        return f"/newsletters/{self.slug}/archive"

    @property
    def issue_path(self) -> str:
        return f"/newsletters/{self.slug}/issues/{self.issue_number}"

    @property
    def subscribe_path(self) -> str:
        return f"/newsletters/{self.slug}/subscribe"


async def _subscription(
    session: AsyncSession, newsletter_id: int, email: str, status: str
) -> Subscription:
    subscriber = Subscriber(email=email, name="", attributes={})
    session.add(subscriber)
    await session.flush()
    subscription = Subscription(
        newsletter_id=newsletter_id,
        subscriber_id=subscriber.id,
        status=status,
        source="form",
        consent_text="By subscribing you agree.",
        requested_at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
    )
    session.add(subscription)
    await session.commit()
    return subscription


async def build_site(session: AsyncSession, signer: Signer) -> Site:
    newsletter = await create_newsletter(
        session,
        description="Five stories worth your time, every Monday morning.",
    )
    await create_newsletter(
        session,
        slug="field-notes",
        name="Field Notes",
        from_name="Field Notes",
        description="Short dispatches from the workshop.",
    )
    stories: list[dict[str, Any]] = [
        {"title": "A story with a picture", "image_alt": "A harbour at dawn"},
        {
            "title": "A story with a very long word",
            "body": f"Someone pasted {LONG_WORD} into the text, and [a link]({LONG_URL}).",
            "url": LONG_URL,
        },
        {"title": "A story with a table and code"},
        {"title": "A story without a link", "url": None, "source": None},
    ]
    stories[2]["body"] = (
        "| Year | Readers |\n| --- | --- |\n| 2025 | 1,200 |\n| 2026 | 3,400 |\n\n"
        f"Run `broadsheet send {LONG_WORD}` to try it."
    )
    issue = await create_issue(
        session,
        newsletter,
        stories=len(stories),
        story_overrides=stories,
        status="sent",
        # Microseconds, as a real send stores them: the page must not print all six.
        sent_at=datetime(2026, 11, 30, 9, 15, 42, 123456, tzinfo=UTC),
    )
    pending = await _subscription(session, newsletter.id, "pending@example.com", "pending")
    active = await _subscription(session, newsletter.id, "active@example.com", "active")
    return Site(
        slug=newsletter.slug,
        issue_number=issue.number,
        confirm_path=f"/confirm/{confirm_token(signer, pending.id)}",
        unsubscribe_path=f"/unsubscribe/{unsubscribe_token(signer, active.id)}",
    )
