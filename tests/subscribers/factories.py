"""Plain async factories for subscriber tests."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import Newsletter, OutboxMessage, Subscriber, Subscription, SubscriptionStatus


async def create_newsletter(session: AsyncSession, **overrides: Any) -> Newsletter:
    values: dict[str, Any] = {
        "slug": "weekly",
        "name": "The Weekly Gazette",
        "description": "Five stories worth your time, every Monday morning.",
        "from_name": "The Weekly Gazette",
        "from_email": "news@example.com",
        "postal_address": "1 Main Street, Springfield",
        "double_opt_in": True,
    }
    values.update(overrides)
    newsletter = Newsletter(**values)
    session.add(newsletter)
    await session.commit()
    return newsletter


async def create_subscription(
    session: AsyncSession,
    newsletter: Newsletter,
    email: str,
    *,
    status: SubscriptionStatus = SubscriptionStatus.active,
    name: str = "",
    attributes: dict[str, Any] | None = None,
) -> Subscription:
    subscriber = Subscriber(email=email, name=name, attributes=attributes or {})
    session.add(subscriber)
    await session.flush()
    subscription = Subscription(
        newsletter_id=newsletter.id,
        subscriber_id=subscriber.id,
        status=status.value,
        source="api",
        consent_text="test",
        requested_at=utcnow(),
    )
    session.add(subscription)
    await session.commit()
    return subscription


async def outbox_rows(session: AsyncSession) -> list[OutboxMessage]:
    result = await session.execute(
        select(OutboxMessage).order_by(OutboxMessage.id).execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def subscription_of(
    session: AsyncSession, email: str, newsletter: Newsletter | None = None
) -> Subscription | None:
    stmt = (
        select(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == email)
        .execution_options(populate_existing=True)
    )
    if newsletter is not None:
        stmt = stmt.where(Subscription.newsletter_id == newsletter.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def count(session: AsyncSession, model: type[Any]) -> int:
    result = await session.execute(select(func.count()).select_from(model))
    return int(result.scalar_one())


def confirm_link(message_bytes: bytes) -> str:
    """The confirm URL from the text part of a confirmation email."""
    msg = email.message_from_bytes(message_bytes, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    match = re.search(r"https?://\S+/confirm/\S+", body.get_content())
    assert match, "no confirm link in the text part"
    return match.group(0)
