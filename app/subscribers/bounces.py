"""What a bounce or complaint does, wherever it comes from.

An SMTP reply during delivery, a webhook, or (later) a report mailed back: every source
calls `record_bounce`, the one place that decides what a bounce does to a subscriber.

- hard bounce: the address is suppressed (its subscriptions become `bounced`, its queued
  deliveries `skipped`), and a `bounce` event is recorded;
- complaint: suppressed too (subscriptions `complained`), a `complaint` event;
- soft bounce: a `soft_bounce` event and one more in the subscription's run; the third
  in a row suppresses the address (a successful send resets the run).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Event, EventKind, SuppressionReason
from app.subscribers import repository
from app.subscribers.suppression import suppress

SOFT_BOUNCES_TO_SUPPRESS = 3


class BounceKind(StrEnum):
    hard = "hard"
    soft = "soft"
    complaint = "complaint"


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
        Event(
            kind=event_kind.value,
            issue_id=issue_id,
            delivery_id=delivery_id,
            subscription_id=subscription_id,
            detail=detail,
            created_at=now,
        ),
    )
    if kind is BounceKind.hard:
        await suppress(session, email, SuppressionReason.hard_bounce, detail)
        return True
    if kind is BounceKind.complaint:
        await suppress(session, email, SuppressionReason.complaint, detail)
        return True
    targets = (
        [subscription_id]
        if subscription_id
        else await repository.subscription_ids_of(session, email)
    )
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
