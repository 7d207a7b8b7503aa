"""The claim: leasing a batch of due deliveries with what their sends need (used by
`sqlstore.SqlStore`), leaving queued those of recipient domains held back by a cap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    any_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.repository import SB, SUP, D, S
from app.kit.db import UTCDateTime
from app.kit.sql import dialect_name
from app.models import DeliveryStatus

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
    """The delivery's address is in none of `domains` (a short list).

    A scalar subquery, so both databases look the address up per candidate row by the
    subscription's and subscriber's primary keys, after the cheap filters. As NOT EXISTS,
    PostgreSQL turned it into an anti-join against every address of those domains,
    guessing a handful (a LIKE's estimate) where there were 50,000, and a claim over
    100,000 queued rows had not finished after ten minutes (bench/claim_caps.py). A
    delivery whose subscription is gone matches nothing, so it is still claimed (and
    skipped).
    """
    email = func.lower(SB.c.email)
    to_them = (
        select(or_(*(email.endswith(f"@{domain}", autoescape=True) for domain in domains)))
        .select_from(S.join(SB, SB.c.id == S.c.subscriber_id))
        .where(S.c.id == D.c.subscription_id)
        .scalar_subquery()
    )
    return ~func.coalesce(to_them, false())


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
    # only while a recipient domain is held back (SKIP LOCKED keeps its workers apart).
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
    chosen = due.scalar_subquery()
    lease = {
        "status": DeliveryStatus.sending.value,
        "lease_owner": owner,
        "lease_expires_at": expires,
    }
    if dialect_name(session) == "postgresql":
        # One statement, as _PG_CLAIM: the UPDATE's rows joined to their addresses. The
        # ids go in as = ANY(ARRAY(...)): with IN, PostgreSQL hashed them and read the
        # whole table to find them.
        claimed = (
            update(D)
            .where(D.c.id == any_(func.array(chosen)))
            .values(**lease)
            .returning(D.c.id, D.c.issue_id, D.c.subscription_id, D.c.attempts)
            .cte("claimed")
        )
        # The planner prices the per-row address lookup for every queued row, though the
        # LIMIT stops far sooner, and that price is over jit_above_cost: compiling the
        # statement took 540 ms where running it took 22 (EXPLAIN ANALYZE, 100,000
        # queued). Off for this transaction only.
        await session.execute(text("SET LOCAL jit = off"))
        rows = await session.execute(_with_details(claimed))
        return [Claimed(*row) for row in rows.all()]
    updated = await session.execute(
        update(D).where(D.c.id.in_(chosen)).values(**lease).returning(D.c.id)
    )
    ids = [row[0] for row in updated.all()]
    if not ids:
        return []
    details = await session.execute(_with_details(D).where(D.c.id.in_(ids)))
    return [Claimed(*row) for row in details.all()]


def _with_details(claimed: Any) -> Any:
    """The claimed rows with their address and send-time checks (`claimed`: a CTE of the
    claim, or `delivery` itself for SQLite's second read)."""
    return (
        select(
            claimed.c.id,
            claimed.c.issue_id,
            claimed.c.subscription_id,
            claimed.c.attempts,
            func.coalesce(SB.c.email, ""),
            func.coalesce(SB.c.name, ""),
            func.coalesce(S.c.status, DELETED),
            exists().where(SUP.c.email == SB.c.email).label("suppressed"),
        )
        .select_from(
            # Outer joins, as in _PG_CLAIM: a delivery of a deleted subscription.
            claimed.outerjoin(S, S.c.id == claimed.c.subscription_id).outerjoin(
                SB, SB.c.id == S.c.subscriber_id
            )
        )
        .order_by(claimed.c.id)
    )
