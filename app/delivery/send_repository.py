"""Queries of the send API: enqueue a send, cancel or requeue its deliveries, and the
counts its reports and /metrics read. The engine's own queries are in `repository`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.repository import PENDING, SB, SUP, D, I, S
from app.delivery.sqlstore import notify_statement
from app.kit.clock import utcnow
from app.kit.db import UTCDateTime
from app.kit.sql import dialect_name, rowcount
from app.models import (
    DeliveryStatus,
    Event,
    IdempotencyRecord,
    IssueStatus,
    Story,
    SubscriptionStatus,
)

EV = cast(Table, Event.__table__)

_RECIPIENTS = D.join(S, S.c.id == D.c.subscription_id).join(SB, SB.c.id == S.c.subscriber_id)


# -- starting a send ------------------------------------------------------------------------------


async def notify_workers(session: AsyncSession) -> None:
    """Wake every listening worker (PostgreSQL); delivered when the transaction commits."""
    if dialect_name(session) == "postgresql":
        await session.execute(text(notify_statement()))


async def stories_of(session: AsyncSession, issue_id: int) -> list[Story]:
    """An issue's stories in their order (the few rows rendering freezes)."""
    result = await session.execute(
        select(Story).where(Story.issue_id == issue_id).order_by(Story.position)
    )
    return list(result.scalars())


async def analyze_deliveries(session: AsyncSession) -> None:
    """Refresh the delivery table's statistics (PostgreSQL; SQLite plans without them)."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("ANALYZE delivery"))


def _sendable(newsletter_id: int) -> tuple[Any, ...]:
    """Who a send goes to: active subscriptions whose address is not suppressed."""
    return (
        S.c.newsletter_id == newsletter_id,
        S.c.status == SubscriptionStatus.active.value,
        ~exists().where(SUP.c.email == SB.c.email),
    )


async def count_recipients(session: AsyncSession, newsletter_id: int) -> int:
    """How many deliveries `enqueue_deliveries` would make if it ran now."""
    result = await session.execute(
        select(func.count())
        .select_from(S.join(SB, SB.c.id == S.c.subscriber_id))
        .where(*_sendable(newsletter_id))
    )
    return int(result.scalar_one())


async def enqueue_deliveries(session: AsyncSession, issue_id: int, newsletter_id: int) -> int:
    """One delivery per active, non-suppressed subscription, in ONE INSERT ... SELECT."""
    now = literal(None, UTCDateTime).label("updated_at")
    source = (
        select(
            literal(issue_id, BigInteger).label("issue_id"),
            S.c.id,
            literal(DeliveryStatus.queued.value, String).label("status"),
            literal(0, Integer).label("attempts"),
            now,
        )
        .select_from(S.join(SB, SB.c.id == S.c.subscriber_id))
        .where(*_sendable(newsletter_id))
        .order_by(S.c.id)
    )
    result = await session.execute(
        insert(D).from_select(
            ["issue_id", "subscription_id", "status", "attempts", "updated_at"], source
        )
    )
    return rowcount(result)


# -- progress -------------------------------------------------------------------------------


async def counts_by_status(session: AsyncSession, issue_id: int) -> dict[str, int]:
    result = await session.execute(
        select(D.c.status, func.count()).where(D.c.issue_id == issue_id).group_by(D.c.status)
    )
    return {row[0]: int(row[1]) for row in result.all()}


async def event_counts(session: AsyncSession, issue_id: int) -> dict[str, tuple[int, int]]:
    """Per event kind: (events, distinct deliveries) for one issue."""
    result = await session.execute(
        select(EV.c.kind, func.count(), func.count(func.distinct(EV.c.delivery_id)))
        .where(EV.c.issue_id == issue_id)
        .group_by(EV.c.kind)
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in result.all()}


async def list_deliveries(
    session: AsyncSession, issue_id: int, *, status: str | None, after_id: int, limit: int
) -> list[Any]:
    query = (
        select(
            D.c.id,
            SB.c.email,
            D.c.status,
            D.c.attempts,
            D.c.last_reply,
            D.c.message_id,
            D.c.sent_at,
        )
        .select_from(_RECIPIENTS)
        .where(D.c.issue_id == issue_id, D.c.id > after_id)
        .order_by(D.c.id)
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(D.c.status == status)
    return list((await session.execute(query)).all())


async def requeue_failed(session: AsyncSession, issue_id: int, now: datetime) -> int:
    result = await session.execute(
        update(D)
        .where(D.c.issue_id == issue_id, D.c.status == DeliveryStatus.failed.value)
        .values(
            status=DeliveryStatus.queued.value,
            attempts=0,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return rowcount(result)


async def cancel_queued(session: AsyncSession, issue_id: int, now: datetime) -> int:
    result = await session.execute(
        update(D)
        .where(D.c.issue_id == issue_id, D.c.status == DeliveryStatus.queued.value)
        .values(status=DeliveryStatus.cancelled.value, updated_at=now)
    )
    return rowcount(result)


async def in_flight_counts(session: AsyncSession) -> list[Any]:
    """(issue_id, status, count) for every issue sending or paused: progress per issue."""
    active = select(I.c.id).where(
        I.c.status.in_([IssueStatus.sending.value, IssueStatus.paused.value])
    )
    result = await session.execute(
        select(D.c.issue_id, D.c.status, func.count())
        .where(D.c.issue_id.in_(active))
        .group_by(D.c.issue_id, D.c.status)
    )
    return list(result.all())


async def pending_counts(session: AsyncSession) -> dict[str, int]:
    """Queued and sending deliveries across every issue (queue depth).

    One count per status, so each reads its own partial index (ix_delivery_queued_id,
    ix_delivery_sending_lease_expires_at) rather than the whole table.
    """
    counts = {
        status: select(func.count()).select_from(D).where(D.c.status == status).scalar_subquery()
        for status in PENDING
    }
    row = (await session.execute(select(*counts.values()))).one()
    return {status: int(n) for status, n in zip(counts, row, strict=True) if n}


async def issue_progress(session: AsyncSession, issue_id: int) -> Any:
    """The issue's own side of its stats, read fresh (status, recipients, times, pause)."""
    result = await session.execute(
        select(I.c.status, I.c.recipients, I.c.started_at, I.c.finished_at, I.c.pause_reason).where(
            I.c.id == issue_id
        )
    )
    return result.one()


# -- Idempotency-Key ------------------------------------------------------------------------


async def find_idempotent(session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
    result = await session.execute(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
    return result.scalar_one_or_none()


async def remember_idempotent(
    session: AsyncSession, scope: str, key: str, status_code: int, body: dict[str, Any]
) -> None:
    """Stored in the same transaction as the change it answers for."""
    session.add(
        IdempotencyRecord(
            scope=scope, key=key, status_code=status_code, body=body, created_at=utcnow()
        )
    )
    await session.flush()
