"""Subscriptions per status, read from the deltas the database's triggers keep.

`subscription_count` (migration 0008) holds signed deltas (newsletter, status, n) that
triggers on `subscription` append on every insert, status change and delete; a count is
the SUM of a newsletter's deltas, exact and read through ix_subscription_count_newsletter_id
in well under a millisecond however many subscriptions there are.

Deltas pile up (one per signup, a few per import statement), so a reader that finds more
than FOLD_AT of a newsletter's rows folds them: one row per status with their sum. It is
done on read, not by the worker's scheduler, so a deployment without a worker, and every
test, keeps the rows bounded too, and only newsletters someone looks at pay for it. The
fold runs in the reader's transaction and costs one DELETE and one small INSERT.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, func, insert, select, text
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


async def fold(session: AsyncSession, newsletter_id: int) -> bool:
    """Replace the newsletter's delta rows by one row per status holding their sum.

    Exact under concurrent writers: the DELETE returns exactly the rows it removed and
    their sum goes back in the same transaction, so a delta appended meanwhile (not seen,
    not deleted) still counts once. On PostgreSQL two folds of one newsletter would wait
    on each other's row locks (and could deadlock, locking rows in different orders), so
    a fold first takes a transaction-level advisory lock without waiting and gives up if
    another fold holds it (the reader's sums are right either way). Appending deltas
    never waits on a fold: new rows conflict with no lock it holds. False when skipped.
    """
    if dialect_name(session) == "postgresql":
        # The key space is shared by every advisory lock of the database: this feature's
        # keys are (class 0x5C0C, newsletter id) via the two-int form, so they cannot
        # meet a one-bigint key another feature might take.
        locked = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(23564, CAST(:id AS integer))"),
            {"id": newsletter_id % 2**31},
        )
        if not locked:
            return False
    result = await session.execute(
        delete(SubscriptionCount)
        .where(SubscriptionCount.newsletter_id == newsletter_id)
        .returning(SubscriptionCount.status, SubscriptionCount.n)
    )
    sums: Counter[str] = Counter()
    for status, n in result.all():
        sums[str(status)] += int(n)
    kept = [
        {"newsletter_id": newsletter_id, "status": status, "n": n}
        for status, n in sorted(sums.items())
        if n != 0
    ]
    if kept:
        await session.execute(insert(SubscriptionCount), kept)
    return True
