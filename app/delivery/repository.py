"""The delivery engine's queries: claim, leases, outcomes (used by `sqlstore.SqlStore`).

The hot path (claim, record outcomes) uses Core statements returning plain tuples:
no ORM object per recipient, one statement per batch, never one per message. The send
API's queries (enqueue, cancel, requeue, progress) are in `send_repository`, the rate
cap's in `quota_repository`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.db import UTCDateTime
from app.kit.sql import dialect_name, rowcount
from app.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    Subscription,
    Suppression,
)

D = cast(Table, Delivery.__table__)
I = cast(Table, Issue.__table__)  # noqa: E741
S = cast(Table, Subscription.__table__)
SB = cast(Table, Subscriber.__table__)
SUP = cast(Table, Suppression.__table__)

# Deliveries that still have to go out (everything else is final).
PENDING = (DeliveryStatus.queued.value, DeliveryStatus.sending.value)


# The subscription status a claimed delivery reports when its subscription is gone.
DELETED = "deleted"


class Claimed(NamedTuple):
    """One claimed delivery with what the send needs and the send-time checks."""

    id: int
    issue_id: int
    subscription_id: int
    attempts: int
    email: str
    name: str
    subscription_status: str
    suppressed: bool


# -- claim ----------------------------------------------------------------------------------

_PG_CLAIM = text(
    """
    WITH claimed AS (
        UPDATE delivery
        SET status = 'sending', lease_owner = :owner, lease_expires_at = :expires
        WHERE status = 'queued' AND id = ANY(ARRAY(
            -- Keyset order (only ids above the last one this worker claimed) keeps each
            -- batch an index range scan instead of a join over the whole table;
            -- SKIP LOCKED lets any number of workers claim at once without overlap.
            SELECT id FROM delivery
            WHERE status = 'queued'
              AND issue_id = ANY(:issues)
              AND id > :after
              AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING id, issue_id, subscription_id, attempts
    )
    -- LEFT JOIN: a subscription deleted while its send was being enqueued leaves a
    -- delivery with nobody behind it (no foreign key), which the engine skips.
    SELECT c.id, c.issue_id, c.subscription_id, c.attempts,
           COALESCE(sb.email, ''), COALESCE(sb.name, ''), COALESCE(s.status, :deleted),
           EXISTS (SELECT 1 FROM suppression x WHERE x.email = sb.email) AS suppressed
    FROM claimed c
    LEFT JOIN subscription s ON s.id = c.subscription_id
    LEFT JOIN subscriber sb ON sb.id = s.subscriber_id
    ORDER BY c.id
    """
).bindparams(
    bindparam("owner", type_=String),
    bindparam("expires", type_=UTCDateTime),
    bindparam("now", type_=UTCDateTime),
    bindparam("issues", type_=ARRAY(BigInteger)),
    bindparam("after", type_=BigInteger),
    bindparam("limit", type_=Integer),
    bindparam("deleted", value=DELETED, type_=String),
)


async def claim_batch(
    session: AsyncSession,
    *,
    owner: str,
    issue_ids: Sequence[int],
    after_id: int,
    limit: int,
    lease_seconds: float,
    now: datetime,
    skip_domains: Sequence[str] = (),
) -> list[Claimed]:
    """Lease up to `limit` due queued deliveries of the given (sending) issues, by id.

    Deliveries to an address in `skip_domains` (recipient domains over their cap) are
    left queued.
    """
    expires = now + timedelta(seconds=lease_seconds)
    if dialect_name(session) == "postgresql" and not skip_domains:
        result = await session.execute(
            _PG_CLAIM,
            {
                "owner": owner,
                "expires": expires,
                "now": now,
                "issues": list(issue_ids),
                "after": after_id,
                "limit": limit,
            },
        )
        return [Claimed(*row) for row in result.all()]
    return await _claim_core(
        session,
        owner=owner,
        issue_ids=issue_ids,
        after_id=after_id,
        limit=limit,
        expires=expires,
        now=now,
        skip_domains=skip_domains,
    )


def _not_to_domains(domains: Sequence[str]) -> Any:
    """The delivery's address is in none of `domains` (one short list, matched per row by
    the subscription's and subscriber's primary keys; a delivery whose subscription is
    gone matches nothing, so it is still claimed, and skipped)."""
    email = func.lower(SB.c.email)
    to_them = (
        select(literal(1))
        .select_from(S.join(SB, SB.c.id == S.c.subscriber_id))
        .where(
            S.c.id == D.c.subscription_id,
            or_(*(email.endswith(f"@{domain}", autoescape=True) for domain in domains)),
        )
    )
    return ~exists(to_them)


async def _claim_core(
    session: AsyncSession,
    *,
    owner: str,
    issue_ids: Sequence[int],
    after_id: int,
    limit: int,
    expires: datetime,
    now: datetime,
    skip_domains: Sequence[str],
) -> list[Claimed]:
    # SQLite: one worker process and one writer at a time, so a plain UPDATE on a
    # subquery is the claim; RETURNING may only name the updated table, hence a second
    # (indexed) read for the address and the send-time checks. PostgreSQL comes this way
    # only while a recipient domain is held back, its SKIP LOCKED keeping workers apart.
    due = (
        select(D.c.id)
        .where(
            D.c.status == DeliveryStatus.queued.value,
            D.c.issue_id.in_(list(issue_ids)),
            D.c.id > after_id,
            or_(D.c.next_attempt_at.is_(None), D.c.next_attempt_at <= now),
            *([_not_to_domains(skip_domains)] if skip_domains else []),
        )
        .order_by(D.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.execute(
        update(D)
        .where(D.c.id.in_(due.scalar_subquery()))
        .values(status=DeliveryStatus.sending.value, lease_owner=owner, lease_expires_at=expires)
        .returning(D.c.id)
    )
    ids = [row[0] for row in claimed.all()]
    if not ids:
        return []
    return await _claimed_details(session, ids)


async def _claimed_details(session: AsyncSession, ids: Sequence[int]) -> list[Claimed]:
    """The address and the send-time checks of freshly claimed rows (SQLite's second read)."""
    details = await session.execute(
        select(
            D.c.id,
            D.c.issue_id,
            D.c.subscription_id,
            D.c.attempts,
            func.coalesce(SB.c.email, ""),
            func.coalesce(SB.c.name, ""),
            func.coalesce(S.c.status, DELETED),
            exists().where(SUP.c.email == SB.c.email).label("suppressed"),
        )
        .select_from(
            # Outer joins, as on PostgreSQL above: a delivery of a deleted subscription.
            D.outerjoin(S, S.c.id == D.c.subscription_id).outerjoin(
                SB, SB.c.id == S.c.subscriber_id
            )
        )
        .where(D.c.id.in_(ids))
        .order_by(D.c.id)
    )
    return [Claimed(*row) for row in details.all()]


async def sending_issue_ids(session: AsyncSession) -> list[int]:
    result = await session.execute(
        select(I.c.id).where(I.c.status == IssueStatus.sending.value).order_by(I.c.id)
    )
    return [row[0] for row in result.all()]


async def issue_statuses(session: AsyncSession, issue_ids: Sequence[int]) -> dict[int, str]:
    if not issue_ids:
        return {}
    result = await session.execute(select(I.c.id, I.c.status).where(I.c.id.in_(list(issue_ids))))
    return {row[0]: row[1] for row in result.all()}


# -- leases ---------------------------------------------------------------------------------


async def renew_leases(session: AsyncSession, owner: str, expires: datetime) -> int:
    result = await session.execute(
        update(D)
        .where(D.c.status == DeliveryStatus.sending.value, D.c.lease_owner == owner)
        .values(lease_expires_at=expires)
    )
    return rowcount(result)


async def reclaim_expired(
    session: AsyncSession, now: datetime, *, except_owner: str | None = None
) -> int:
    """A `sending` row whose lease ran out (its worker died) goes back to the queue.

    A worker never takes back its own rows: it still holds them in memory, and when its
    lease ran out only because the database was unreachable for a while, some of them
    are already with the SMTP server, their outcomes waiting to be written.
    """
    owner_filter = (
        []
        if except_owner is None
        else [or_(D.c.lease_owner.is_(None), D.c.lease_owner != except_owner)]
    )
    result = await session.execute(
        update(D)
        .where(
            D.c.status == DeliveryStatus.sending.value,
            D.c.lease_expires_at < now,
            *owner_filter,
        )
        .values(status=DeliveryStatus.queued.value, lease_owner=None, lease_expires_at=None)
    )
    return rowcount(result)


async def cancel_leftovers(session: AsyncSession, now: datetime) -> int:
    """Queued rows of a cancelled issue (released by a worker after the cancel) end cancelled."""
    cancelled = select(I.c.id).where(I.c.status == IssueStatus.cancelled.value)
    result = await session.execute(
        update(D)
        .where(D.c.status == DeliveryStatus.queued.value, D.c.issue_id.in_(cancelled))
        .values(status=DeliveryStatus.cancelled.value, updated_at=now)
    )
    return rowcount(result)


async def finish_issues(session: AsyncSession, issue_ids: Sequence[int], now: datetime) -> int:
    """Issues with no queued or sending delivery left become `sent`."""
    if not issue_ids:
        return 0
    pending = exists().where(D.c.issue_id == I.c.id, D.c.status.in_(PENDING))
    result = await session.execute(
        update(I)
        .where(I.c.id.in_(list(issue_ids)), I.c.status == IssueStatus.sending.value, ~pending)
        .values(status=IssueStatus.sent.value, finished_at=now, sent_at=now, updated_at=now)
    )
    return rowcount(result)


# -- outcomes -------------------------------------------------------------------------------

# One executemany per outcome kind; every row is matched on id AND our lease, so a row
# taken over by another worker after our lease expired is never overwritten.
_LEASED = and_(D.c.id == bindparam("b_id"), D.c.lease_owner == bindparam("b_owner"))


def _outcome_update(**values: Any) -> Any:
    return update(D).where(_LEASED).values(lease_owner=None, lease_expires_at=None, **values)


MARK_SENT = _outcome_update(
    status=DeliveryStatus.sent.value,
    attempts=bindparam("b_attempts"),
    message_id=bindparam("b_message_id"),
    last_reply=bindparam("b_reply"),
    sent_at=bindparam("b_now"),
    updated_at=bindparam("b_now"),
)
MARK_RETRY = _outcome_update(
    status=DeliveryStatus.queued.value,
    attempts=bindparam("b_attempts"),
    last_reply=bindparam("b_reply"),
    next_attempt_at=bindparam("b_next"),
    updated_at=bindparam("b_now"),
)
MARK_RELEASE = _outcome_update(
    status=DeliveryStatus.queued.value,
    next_attempt_at=bindparam("b_next"),
    updated_at=bindparam("b_now"),
)
MARK_REQUEUE = _outcome_update(
    status=DeliveryStatus.queued.value,
    next_attempt_at=bindparam("b_next"),
    last_reply=bindparam("b_reply"),
    updated_at=bindparam("b_now"),
)
MARK_FINAL = _outcome_update(
    status=bindparam("b_status"),
    attempts=bindparam("b_attempts"),
    message_id=bindparam("b_message_id"),
    last_reply=bindparam("b_reply"),
    updated_at=bindparam("b_now"),
)


async def write_outcomes(session: AsyncSession, statement: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany of an outcome statement (Core, no ORM objects)."""
    if rows:
        conn = await session.connection()
        await conn.execute(statement, rows)


async def reset_soft_bounces(session: AsyncSession, subscription_ids: Sequence[int]) -> None:
    if subscription_ids:
        await session.execute(
            update(S)
            .where(S.c.id.in_(list(subscription_ids)), S.c.soft_bounces > 0)
            .values(soft_bounces=0)
        )


async def record_policy_refusals(
    session: AsyncSession, issue_id: int, run: int, *, reset: bool, now: datetime
) -> int:
    """Store the run of consecutive 5.7.x refusals; the current run length."""
    value = literal(run) if reset else I.c.policy_refusals + run
    await session.execute(update(I).where(I.c.id == issue_id).values(policy_refusals=value))
    result = await session.execute(select(I.c.policy_refusals).where(I.c.id == issue_id))
    return int(result.scalar_one_or_none() or 0)


async def pause_issue(session: AsyncSession, issue_id: int, reason: str, now: datetime) -> bool:
    result = await session.execute(
        update(I)
        .where(I.c.id == issue_id, I.c.status == IssueStatus.sending.value)
        .values(status=IssueStatus.paused.value, pause_reason=reason, updated_at=now)
    )
    return rowcount(result) > 0
