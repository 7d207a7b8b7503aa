"""The suppression list: addresses that must never be mailed again (SPEC section 2).

Suppressing an address also ends its subscriptions (bounced or complained) and skips
every delivery of it still waiting in a queue, so it takes effect mid-send.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import SubscriptionStatus, SuppressionReason
from app.subscribers import repository

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
    now = utcnow()
    added = await repository.add_suppression(session, email, reason, detail, now)
    await repository.end_subscriptions_of(session, email, _SUBSCRIPTION_STATUS[reason], now)
    await repository.skip_queued_deliveries_of(session, email, f"suppressed: {reason.value}", now)
    return added


async def is_suppressed(session: AsyncSession, email: str) -> bool:
    return await repository.is_suppressed(session, email)
