from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Delivery, Event, EventKind, Issue, Newsletter, Subscriber, Subscription


async def delivery_for_open(session: AsyncSession, delivery_id: int) -> Any | None:
    """(id, issue_id, subscription_id, track_opens) of a delivery, or None."""
    result = await session.execute(
        select(Delivery.id, Delivery.issue_id, Delivery.subscription_id, Newsletter.track_opens)
        .join(Issue, Issue.id == Delivery.issue_id)
        .join(Newsletter, Newsletter.id == Issue.newsletter_id)
        .where(Delivery.id == delivery_id)
    )
    return result.first()


async def delivery_for_click(session: AsyncSession, delivery_id: int) -> Any | None:
    """(id, issue_id, subscription_id, track_clicks, rendered_html, rendered_at), or None."""
    result = await session.execute(
        select(
            Delivery.id,
            Delivery.issue_id,
            Delivery.subscription_id,
            Newsletter.track_clicks,
            Issue.rendered_html,
            Issue.rendered_at,
        )
        .join(Issue, Issue.id == Delivery.issue_id)
        .join(Newsletter, Newsletter.id == Issue.newsletter_id)
        .where(Delivery.id == delivery_id)
    )
    return result.first()


async def add_event(
    session: AsyncSession,
    *,
    kind: str,
    issue_id: int,
    delivery_id: int,
    subscription_id: int,
    url: str | None = None,
) -> None:
    await session.execute(
        insert(Event).values(
            kind=kind,
            issue_id=issue_id,
            delivery_id=delivery_id,
            subscription_id=subscription_id,
            url=url,
        )
    )


async def delivery_by_message_id(
    session: AsyncSession, message_id: str, *, delivery_id: int | None
) -> Any | None:
    """(delivery id, issue id, subscription id, address) of the delivery sent with this
    Message-ID, or None.

    `delivery_id`, read from a Message-ID of Broadsheet's own form, finds the row by its
    key; it still must carry exactly that Message-ID, so another installation's report
    (same form, other installation tag) never lands on one of ours. Without it the
    stored message_id column is searched.
    """
    query = (
        select(Delivery.id, Delivery.issue_id, Delivery.subscription_id, Subscriber.email)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Delivery.message_id == message_id)
    )
    if delivery_id is not None:
        query = query.where(Delivery.id == delivery_id)
    return (await session.execute(query.limit(1))).first()


async def clicks_by_link(session: AsyncSession, issue_id: int, *, limit: int) -> list[Any]:
    """(url, clicks, unique_clicks) of an issue's links, most clicked first; unique counts
    distinct deliveries (readers). Reads the (issue_id, kind) index of event."""
    unique = func.count(func.distinct(Event.delivery_id))
    total = func.count()
    result = await session.execute(
        select(Event.url, total.label("clicks"), unique.label("unique_clicks"))
        .where(Event.issue_id == issue_id, Event.kind == EventKind.click.value)
        .group_by(Event.url)
        .order_by(total.desc(), Event.url)
        .limit(limit)
    )
    return list(result.all())
