"""Queries on subscribers and subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.sql import insert_ignore, insert_ignore_returning, rowcount
from app.models import (
    Delivery,
    DeliveryStatus,
    Event,
    Newsletter,
    OutboxMessage,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)


async def get_subscriber_by_email(session: AsyncSession, email: str) -> Subscriber | None:
    result = await session.execute(select(Subscriber).where(Subscriber.email == email))
    return result.scalar_one_or_none()


async def ensure_subscriber(
    session: AsyncSession, *, email: str, name: str, attributes: dict[str, Any], now: datetime
) -> tuple[Subscriber, bool]:
    """The subscriber row for `email` and whether it was created now.

    INSERT .. ON CONFLICT DO NOTHING RETURNING, and a read only when the address existed:
    two requests racing for one new address both end with the same row instead of one of
    them failing.
    """
    created = await insert_ignore_returning(
        session,
        Subscriber,
        {
            "email": email,
            "name": name,
            "attributes": attributes,
            "created_at": now,
            "updated_at": now,
        },
        ["email"],
    )
    if created is not None:
        return created, True
    subscriber = await get_subscriber_by_email(session, email)
    assert subscriber is not None
    return subscriber, False


async def subscribers_matching(session: AsyncSession, email: str) -> list[Subscriber]:
    """Subscribers whose address equals `email` ignoring case (for erasure requests)."""
    result = await session.execute(
        select(Subscriber).where(func.lower(Subscriber.email) == email.lower())
    )
    return list(result.scalars())


async def get_subscription(
    session: AsyncSession, newsletter_id: int, subscriber_id: int, *, for_update: bool = False
) -> Subscription | None:
    stmt = select(Subscription).where(
        Subscription.newsletter_id == newsletter_id,
        Subscription.subscriber_id == subscriber_id,
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_subscription(session: AsyncSession, values: dict[str, Any]) -> Subscription | None:
    """Insert unless (newsletter, subscriber) exists; the new row, or None."""
    return await insert_ignore_returning(
        session, Subscription, values, ["newsletter_id", "subscriber_id"]
    )


async def get_with_subscriber(
    session: AsyncSession, subscription_id: int, *, newsletter_id: int | None = None
) -> tuple[Subscription, Subscriber] | None:
    stmt = (
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.id == subscription_id)
    )
    if newsletter_id is not None:
        stmt = stmt.where(Subscription.newsletter_id == newsletter_id)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def get_full(
    session: AsyncSession, subscription_id: int
) -> tuple[Subscription, Subscriber, Newsletter] | None:
    stmt = (
        select(Subscription, Subscriber, Newsletter)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
        .where(Subscription.id == subscription_id)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1], row[2])


async def export_page(
    session: AsyncSession, *, newsletter_id: int, status: str | None, after_id: int, limit: int
) -> Sequence[Row[Any]]:
    stmt = (
        select(
            Subscription.id,
            Subscriber.email,
            Subscriber.name,
            Subscription.status,
            Subscription.source,
            Subscription.created_at,
            Subscription.confirmed_at,
            Subscription.unsubscribed_at,
            Subscriber.attributes,
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.newsletter_id == newsletter_id, Subscription.id > after_id)
        .order_by(Subscription.id)
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(Subscription.status == status)
    return (await session.execute(stmt)).all()


async def activate_pending(
    session: AsyncSession,
    subscription_id: int,
    *,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """pending -> active; a conditional UPDATE so it cannot undo a concurrent unsubscribe."""
    result = await session.execute(
        update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status == SubscriptionStatus.pending.value,
        )
        .values(
            status=SubscriptionStatus.active.value,
            confirmed_at=now,
            confirmed_ip=ip,
            confirmed_user_agent=user_agent,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) > 0


async def mark_unsubscribed(session: AsyncSession, subscription_id: int, *, now: datetime) -> bool:
    """pending/active -> unsubscribed; True when this call changed it."""
    result = await session.execute(
        update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status.in_(
                [SubscriptionStatus.pending.value, SubscriptionStatus.active.value]
            ),
        )
        .values(status=SubscriptionStatus.unsubscribed.value, unsubscribed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) > 0


async def skip_queued_deliveries(
    session: AsyncSession, subscription_id: int, *, now: datetime, reason: str
) -> int:
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.subscription_id == subscription_id,
            Delivery.status == DeliveryStatus.queued.value,
        )
        .values(status=DeliveryStatus.skipped.value, last_reply=reason, updated_at=now)
    )
    return rowcount(result)


async def latest_sent_delivery(
    session: AsyncSession, subscription_id: int
) -> tuple[int, int] | None:
    """(delivery id, issue id) of the last issue sent on this subscription, if any."""
    row = (
        await session.execute(
            select(Delivery.id, Delivery.issue_id)
            .where(
                Delivery.subscription_id == subscription_id,
                Delivery.status == DeliveryStatus.sent.value,
            )
            .order_by(Delivery.id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def add_event(session: AsyncSession, event: Event) -> None:
    session.add(event)
    await session.flush()


async def suppression_for(session: AsyncSession, email: str) -> Suppression | None:
    result = await session.execute(select(Suppression).where(Suppression.email == email))
    return result.scalar_one_or_none()


async def erase_subscriber_data(session: AsyncSession, subscriber: Subscriber) -> None:
    """Delete everything that names or tracks this person.

    Events point at deliveries and subscriptions with ON DELETE SET NULL (so statistics
    survive ordinary deletes); for an erasure they go entirely.
    """
    subscription_ids = select(Subscription.id).where(Subscription.subscriber_id == subscriber.id)
    delivery_ids = select(Delivery.id).where(Delivery.subscription_id.in_(subscription_ids))
    await session.execute(
        delete(Event)
        .where(
            or_(
                Event.subscription_id.in_(subscription_ids),
                Event.delivery_id.in_(delivery_ids),
            )
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.rcpt_to == subscriber.email)
        .execution_options(synchronize_session=False)
    )
    # Deliveries have no foreign key (see models.Delivery): they go first, by hand;
    # subscriptions and their outbox rows go with the subscriber (CASCADE).
    await session.execute(
        delete(Delivery)
        .where(Delivery.subscription_id.in_(subscription_ids))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(Subscriber)
        .where(Subscriber.id == subscriber.id)
        .execution_options(synchronize_session=False)
    )


async def delete_subscription(session: AsyncSession, subscription_id: int) -> None:
    """Delete a subscription with its deliveries; its outbox rows go with it (CASCADE).

    Events keep their counts (their references are set to NULL).
    """
    await session.execute(
        delete(Delivery)
        .where(Delivery.subscription_id == subscription_id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(Subscription)
        .where(Subscription.id == subscription_id)
        .execution_options(synchronize_session=False)
    )


# -- suppression and bounces -----------------------------------------------------------------


def _subscription_ids_of(email: str) -> Any:
    return (
        select(Subscription.id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == email)
    )


async def add_suppression(
    session: AsyncSession, email: str, reason: SuppressionReason, detail: str | None, now: datetime
) -> bool:
    """Insert the address into the suppression list; True when it was not there yet."""
    added = await insert_ignore(
        session,
        Suppression.__table__,  # type: ignore[arg-type]
        {"email": email, "reason": reason.value, "detail": detail, "created_at": now},
        ["email"],
    )
    return added > 0


async def end_subscriptions_of(
    session: AsyncSession, email: str, status: SubscriptionStatus, now: datetime
) -> None:
    """Every pending or active subscription of the address takes `status`."""
    await session.execute(
        update(Subscription)
        .where(
            Subscription.id.in_(_subscription_ids_of(email)),
            Subscription.status.in_(
                [SubscriptionStatus.active.value, SubscriptionStatus.pending.value]
            ),
        )
        .values(status=status.value, updated_at=now)
    )


async def skip_queued_deliveries_of(
    session: AsyncSession, email: str, reply: str, now: datetime
) -> None:
    """Queued deliveries to the address become `skipped` (a send in progress included)."""
    await session.execute(
        update(Delivery)
        .where(
            Delivery.subscription_id.in_(_subscription_ids_of(email)),
            Delivery.status == DeliveryStatus.queued.value,
        )
        .values(status=DeliveryStatus.skipped.value, last_reply=reply, updated_at=now)
    )


async def is_suppressed(session: AsyncSession, email: str) -> bool:
    result = await session.execute(select(exists().where(Suppression.email == email)))
    return bool(result.scalar())


async def subscription_ids_of(session: AsyncSession, email: str) -> list[int]:
    result = await session.execute(_subscription_ids_of(email))
    return [int(row[0]) for row in result.all()]


async def add_soft_bounce(session: AsyncSession, subscription_id: int) -> int:
    """Count one more soft bounce in a row; the new count."""
    await session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(soft_bounces=Subscription.soft_bounces + 1)
    )
    result = await session.execute(
        select(Subscription.soft_bounces).where(Subscription.id == subscription_id)
    )
    return int(result.scalar_one_or_none() or 0)
