"""Subscriptions per status, read from the deltas the database's triggers keep.

`subscription_count` (migration 0008) holds signed deltas (newsletter, status, n) that
triggers on `subscription` append on every insert, status change and delete; a count is
the SUM of a newsletter's deltas, exact, and read through the index on newsletter_id in
about a millisecond however many subscriptions there are.

Deltas pile up (one per signup; per import, a few on PostgreSQL, whose triggers run once
per statement, and one per row on SQLite), so a reader that finds more
than FOLD_AT of a newsletter's rows folds them: one row per status with their sum. It is
done on read, not by the worker's scheduler, so a deployment without a worker, and every
test, keeps the rows bounded too, and only newsletters someone looks at pay for it. The
fold runs in the reader's transaction and costs one DELETE and one small INSERT.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.sql import dialect_name
from app.models import SubscriptionCount

# Above this many delta rows a read folds them; a read sums at most a few hundred rows.
FOLD_AT = 100


async def read(session: AsyncSession, newsletter_id: int) -> tuple[dict[str, int], int]:
    """({status: subscriptions}, how many delta rows were summed)."""
    result = await session.execute(
        select(SubscriptionCount.status, func.sum(SubscriptionCount.n), func.count())
        .where(SubscriptionCount.newsletter_id == newsletter_id)
        .group_by(SubscriptionCount.status)
    )
    counts: dict[str, int] = {}
    rows = 0
    for status, total, found in result.all():
        counts[str(status)] = int(total)
        rows += int(found)
    return counts, rows


# PostgreSQL: one statement. The DELETE returns exactly the rows it removed and their
# sums go back in, so a delta appended meanwhile (invisible to it, not deleted) still
# counts once. Nothing is carried to Python, however many rows an import left.
_FOLD_PG = text(
    """
    WITH gone AS (
        DELETE FROM subscription_count WHERE newsletter_id = :id RETURNING status, n
    )
    INSERT INTO subscription_count (newsletter_id, status, n)
    SELECT :id, status, sum(n) FROM gone GROUP BY status HAVING sum(n) <> 0
    """
)
# SQLite has no DELETE inside a WITH. It has one writer at a time: the INSERT takes the
# write lock (and holds it to the commit), so between it and the DELETE no delta can
# be appended, and the DELETE removes exactly the rows that were summed, sparing the
# sum rows just inserted.
_SUM_SQLITE = text(
    """
    INSERT INTO subscription_count (newsletter_id, status, n)
    SELECT :id, status, sum(n) FROM subscription_count WHERE newsletter_id = :id
    GROUP BY status HAVING sum(n) <> 0
    RETURNING id
    """
)


async def fold(session: AsyncSession, newsletter_id: int) -> bool:
    """Replace the newsletter's delta rows by one row per status holding their sum.

    On PostgreSQL two folds of one newsletter would wait on each other's row locks (and
    could deadlock, locking rows in different orders), so a fold first takes a
    transaction-level advisory lock without waiting and gives up if another fold holds
    it (the reader's sums are right either way). Appending deltas never waits on a fold:
    a new row conflicts with no lock it holds. False when skipped.
    """
    if dialect_name(session) == "postgresql":
        # Advisory keys are shared by the whole database: the two-int form with this
        # feature's class (0x5C0C) cannot meet a one-bigint key taken elsewhere.
        locked = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(23564, CAST(:id AS integer))"),
            {"id": newsletter_id % 2**31},
        )
        if not locked:
            return False
        await session.execute(_FOLD_PG, {"id": newsletter_id})
        return True
    kept = list((await session.scalars(_SUM_SQLITE, {"id": newsletter_id})).all())
    await session.execute(
        delete(SubscriptionCount).where(
            SubscriptionCount.newsletter_id == newsletter_id, SubscriptionCount.id.not_in(kept)
        )
    )
    return True
