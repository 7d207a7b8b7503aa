"""The suppression list: addresses that must never be mailed again (SPEC section 2).

Suppressing an address also ends its subscriptions (bounced or complained) and skips
every delivery of it still waiting in a queue, so it takes effect mid-send.
"""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.kit.sql import insert_ignore
from app.models import (
    Delivery,
    DeliveryStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)

_SUBSCRIPTION_STATUS = {
    SuppressionReason.hard_bounce: SubscriptionStatus.bounced,
    SuppressionReason.soft_bounces: SubscriptionStatus.bounced,
    SuppressionReason.complaint: SubscriptionStatus.complained,
    SuppressionReason.erasure: SubscriptionStatus.unsubscribed,
    SuppressionReason.manual: SubscriptionStatus.unsubscribed,
}


async def suppress(
    session: AsyncSession, email: str, reason: SuppressionReason, detail: str | None = None
) -> bool:
    """Add `email` (normalised) to the suppression list; True when it was not there yet."""
    added = await insert_ignore(
        session,
        Suppression.__table__,  # type: ignore[arg-type]
        {"email": email, "reason": reason.value, "detail": detail, "created_at": utcnow()},
        ["email"],
    )
    subscription_ids = (
        select(Subscription.id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == email)
    )
    new_status = _SUBSCRIPTION_STATUS[reason]
    now = utcnow()
    await session.execute(
        update(Subscription)
        .where(
            Subscription.id.in_(subscription_ids),
            Subscription.status.in_(
                [SubscriptionStatus.active.value, SubscriptionStatus.pending.value]
            ),
        )
        .values(status=new_status.value, updated_at=now)
    )
    await session.execute(
        update(Delivery)
        .where(
            Delivery.subscription_id.in_(subscription_ids),
            Delivery.status == DeliveryStatus.queued.value,
        )
        .values(
            status=DeliveryStatus.skipped.value,
            last_reply=f"suppressed: {reason.value}",
            updated_at=now,
        )
    )
    return added > 0


async def is_suppressed(session: AsyncSession, email: str) -> bool:
    result = await session.execute(select(exists().where(Suppression.email == email)))
    return bool(result.scalar())
