"""Queries of the CSV import: one batch of rows is a handful of set-wise statements.

Each function is one statement over the whole batch (never one per row), so a batch of
1000 rows costs the same few round trips as a batch of ten.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.sql import dialect_insert
from app.models import Subscriber, Subscription, Suppression

_SUBSCRIBER = cast(Table, Subscriber.__table__)
_SUBSCRIPTION = cast(Table, Subscription.__table__)


async def suppressed_among(session: AsyncSession, emails: list[str]) -> set[str]:
    """The addresses of `emails` that are on the suppression list."""
    result = await session.execute(select(Suppression.email).where(Suppression.email.in_(emails)))
    return set(result.scalars())


async def subscribers_by_email(session: AsyncSession, emails: list[str]) -> dict[str, Row[Any]]:
    """(id, email, name, attributes) of the subscribers that exist, by address."""
    result = await session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.attributes).where(
            Subscriber.email.in_(emails)
        )
    )
    return {row.email: row for row in result}


async def update_subscribers(session: AsyncSession, changes: list[dict[str, Any]]) -> None:
    """One bulk UPDATE by primary key: each dict holds `id` and the new values."""
    await session.execute(update(Subscriber), changes)


async def insert_subscribers(session: AsyncSession, values: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the new subscribers, skipping addresses that exist; ids of those inserted."""
    result = await session.execute(
        dialect_insert(session, _SUBSCRIBER)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(_SUBSCRIBER.c.id, _SUBSCRIBER.c.email),
        values,
    )
    return {row.email: row.id for row in result}


async def subscriber_ids(session: AsyncSession, emails: list[str]) -> dict[str, int]:
    result = await session.execute(
        select(Subscriber.id, Subscriber.email).where(Subscriber.email.in_(emails))
    )
    return {row.email: row.id for row in result}


async def insert_subscriptions(session: AsyncSession, values: list[dict[str, Any]]) -> set[int]:
    """Insert the subscriptions that do not exist; the subscriber ids of those inserted.

    No SELECT of who is already subscribed: the INSERT's conflict check on the unique
    (newsletter, subscriber) index answers that, and RETURNING names the rows it added.
    (A SELECT by `subscriber_id IN (...)` was planned against stale statistics while the
    table grew under the import, and went quadratic on PostgreSQL.)
    """
    result = await session.execute(
        dialect_insert(session, _SUBSCRIPTION)
        .on_conflict_do_nothing(index_elements=["newsletter_id", "subscriber_id"])
        .returning(_SUBSCRIPTION.c.subscriber_id),
        values,
    )
    return set(result.scalars())
