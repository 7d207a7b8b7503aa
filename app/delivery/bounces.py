"""What a bounce or complaint does, wherever it comes from (an SMTP reply or a webhook).

- hard bounce: the address is suppressed (its subscriptions become `bounced`, its queued
  deliveries `skipped`), and a `bounce` event is recorded;
- complaint: suppressed too (subscriptions `complained`), a `complaint` event;
- soft bounce: a `soft_bounce` event and one more in the subscription's run; the third
  in a row suppresses the address (a successful send resets the run).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import repository
from app.models import EventKind, Subscriber, Subscription, SuppressionReason
from app.subscribers.suppression import suppress

SOFT_BOUNCES_TO_SUPPRESS = 3


class BounceKind(StrEnum):
    hard = "hard"
    soft = "soft"
    complaint = "complaint"


async def _subscription_ids(session: AsyncSession, email: str) -> list[int]:
    result = await session.execute(
        select(Subscription.id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == email)
    )
    return [row[0] for row in result.all()]


async def record_bounce(
    session: AsyncSession,
    *,
    email: str,
    kind: BounceKind,
    detail: str | None,
    now: datetime,
    issue_id: int | None = None,
    delivery_id: int | None = None,
    subscription_id: int | None = None,
) -> bool:
    """Apply one bounce or complaint; True when the address ended up suppressed."""
    detail = detail[:1000] if detail else None
    event_kind = {
        BounceKind.hard: EventKind.bounce,
        BounceKind.soft: EventKind.soft_bounce,
        BounceKind.complaint: EventKind.complaint,
    }[kind]
    await repository.add_event(
        session,
        event_kind,
        issue_id=issue_id,
        delivery_id=delivery_id,
        subscription_id=subscription_id,
        detail=detail,
        now=now,
    )
    if kind is BounceKind.hard:
        await suppress(session, email, SuppressionReason.hard_bounce, detail)
        return True
    if kind is BounceKind.complaint:
        await suppress(session, email, SuppressionReason.complaint, detail)
        return True
    targets = [subscription_id] if subscription_id else await _subscription_ids(session, email)
    runs = [await repository.add_soft_bounce(session, target) for target in targets]
    if runs and max(runs) >= SOFT_BOUNCES_TO_SUPPRESS:
        await suppress(
            session,
            email,
            SuppressionReason.soft_bounces,
            f"{max(runs)} soft bounces in a row; last: {detail or 'no detail'}",
        )
        return True
    return False
