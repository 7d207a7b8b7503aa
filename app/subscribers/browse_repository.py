"""Queries behind the dashboard's subscriber screens: keyset pages both ways and one
subscription's events and deliveries (the counts per status are in count_repository).

Written to stay fast at a million subscriptions in one newsletter (SPEC section 11):

- pages walk `subscription.id` from a key (`id > after` ascending, `id < before`
  descending), never OFFSET, so a late page costs what the first one does;
- a status filter is a range of the (newsletter_id, status, id) index;
- substring search is `ILIKE '%part%'` on the address and the name, which PostgreSQL
  answers from the pg_trgm GIN indexes of migration 0007 when the part is rare, and by
  walking the subscriptions in id order when it is common (the planner picks).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Delivery, Event, Issue, Subscriber, Subscription


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matches(q: str) -> ColumnElement[bool]:
    """A part of the address or of the name, any case.

    ILIKE on PostgreSQL (what the trigram indexes serve), `lower(..) LIKE lower(..)` on
    SQLite. The pattern's own % and _ are escaped: they are searched for, not wildcards.
    """
    pattern = f"%{_escape_like(q)}%"
    return or_(
        Subscriber.email.ilike(pattern, escape="\\"),
        Subscriber.name.ilike(pattern, escape="\\"),
    )


async def page(
    session: AsyncSession,
    *,
    newsletter_id: int,
    status: str | None,
    q: str | None,
    after_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[Subscription, Subscriber]]:
    """`limit + 1` rows after `after_id` (ascending) or before `before_id` (read
    descending, returned nearest first: the caller reverses them)."""
    stmt = (
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.newsletter_id == newsletter_id)
    )
    if status is not None:
        stmt = stmt.where(Subscription.status == status)
    if q:
        stmt = stmt.where(matches(q))
    if before_id is not None:
        stmt = stmt.where(Subscription.id < before_id).order_by(Subscription.id.desc())
    else:
        stmt = stmt.where(Subscription.id > (after_id or 0)).order_by(Subscription.id)
    rows = await session.execute(stmt.limit(limit + 1))
    return [(row[0], row[1]) for row in rows]


async def recent_events(
    session: AsyncSession, subscription_id: int, limit: int
) -> list[tuple[Event, int | None, str | None]]:
    """The subscription's latest events (ix_event_subscription_id, migration 0007) with
    their issue's number and subject, when they name one."""
    result = await session.execute(
        select(Event, Issue.number, Issue.subject)
        .outerjoin(Issue, Issue.id == Event.issue_id)
        .where(Event.subscription_id == subscription_id)
        .order_by(Event.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in result.all()]


async def recent_deliveries(
    session: AsyncSession, subscription_id: int, limit: int
) -> list[tuple[Delivery, int | None, str | None]]:
    """The subscription's latest deliveries with their issue's number and subject."""
    result = await session.execute(
        select(Delivery, Issue.number, Issue.subject)
        .outerjoin(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscription_id == subscription_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in result.all()]
