"""Queries of the send caps: the shared token buckets in `send_quota` (one row a bucket)
and WARMUP's daily counts in `send_warmup` (one row a From domain)."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.sql import insert_ignore
from app.models import SendQuota, SendWarmup

Q = cast(Table, SendQuota.__table__)
W = cast(Table, SendWarmup.__table__)


async def lock_bucket(session: AsyncSession, name: str) -> tuple[float, float] | None:
    """The bucket's (tokens, refilled_at), or None when it has no row yet.

    FOR UPDATE holds the row until the transaction ends, so on PostgreSQL two workers'
    takes follow each other instead of spending the same tokens (SQLite ignores it: it
    has one writer at a time and the rate cap locks per process).
    """
    row = (
        await session.execute(
            select(Q.c.tokens, Q.c.refilled_at).where(Q.c.name == name).with_for_update()
        )
    ).first()
    return None if row is None else (float(row[0]), float(row[1]))


async def create_bucket(session: AsyncSession, name: str, now: float) -> None:
    """An empty bucket; a worker that created it at the same moment wins, quietly."""
    await insert_ignore(session, Q, {"name": name, "tokens": 0.0, "refilled_at": now}, ["name"])


async def store_bucket(session: AsyncSession, name: str, tokens: float, refilled_at: float) -> None:
    await session.execute(
        update(Q).where(Q.c.name == name).values(tokens=tokens, refilled_at=refilled_at)
    )


class WarmupCount(NamedTuple):
    first_day: date
    day: date
    sent: int


async def lock_warmup(session: AsyncSession, domain: str, today: date) -> WarmupCount:
    """The From domain's count, locked until the transaction ends; made on its first send.

    On PostgreSQL a worker that made the row at the same moment wins (ON CONFLICT DO
    NOTHING waits for it), and FOR UPDATE then reads that row.
    """
    values = {"domain": domain, "first_day": today, "day": today, "sent": 0}
    await insert_ignore(session, W, values, ["domain"])
    row = (
        await session.execute(
            select(W.c.first_day, W.c.day, W.c.sent).where(W.c.domain == domain).with_for_update()
        )
    ).one()
    return WarmupCount(row[0], row[1], int(row[2]))


async def store_warmup(session: AsyncSession, domain: str, day: date, sent: int) -> None:
    await session.execute(update(W).where(W.c.domain == domain).values(day=day, sent=sent))
