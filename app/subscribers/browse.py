"""Reading a newsletter's subscribers a page at a time, and one person's history.

What the dashboard's subscriber screens show; `service` offers these to other features.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from app.subscribers import browse_repository, count_repository

PAGE_SIZE = 50
HISTORY_SHOWN = 50


@dataclass(frozen=True, slots=True)
class Browse:
    """One page of subscriptions in id order, and the keys of the pages beside it."""

    rows: list[tuple[Subscription, Subscriber]]
    next_after: int | None  # ?after= of the next page, None on the last one
    prev_before: int | None  # ?before= of the previous page, None on the first one


async def browse(
    session: AsyncSession,
    newsletter: Newsletter,
    *,
    status: SubscriptionStatus | None = None,
    q: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> Browse:
    """A keyset page: after the id `after`, or before the id `before` (the previous page).

    A page is read `limit + 1` rows long: the extra row only says that more lie beyond.
    Coming from a neighbour, the way back exists (its key came from a row of it).
    """
    found = await browse_repository.page(
        session,
        newsletter_id=newsletter.id,
        status=status.value if status else None,
        q=q.strip() if q and q.strip() else None,
        after_id=after,
        before_id=before,
        limit=limit,
    )
    more = len(found) > limit
    rows = found[:limit]
    if before is not None:
        rows.reverse()
        first, last = (rows[0][0].id, rows[-1][0].id) if rows else (None, None)
        return Browse(rows, next_after=last or (before - 1), prev_before=first if more else None)
    if not rows:
        return Browse(rows, next_after=None, prev_before=after + 1 if after else None)
    return Browse(
        rows,
        next_after=rows[-1][0].id if more else None,
        prev_before=rows[0][0].id if after else None,
    )


# Counting is the one part of the list that grows with the newsletter: a grouped COUNT(*)
# of a million subscriptions took 220-420 ms on PostgreSQL 15. So the database keeps the
# counts itself, as deltas appended by triggers (migration 0008, count_repository), exact
# for every writer, and a read of a few rows.
async def status_counts(session: AsyncSession, newsletter: Newsletter) -> dict[str, int]:
    """Subscriptions per status (every status present, 0 when none), and "all"."""
    counts, rows = await count_repository.read(session, newsletter.id)
    if rows > count_repository.FOLD_AT:
        await count_repository.fold(session, newsletter.id)
    shown = {status.value: counts.get(status.value, 0) for status in SubscriptionStatus}
    shown["all"] = sum(counts.values())
    return shown


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """An event or a delivery on a subscriber's page."""

    kind: str  # an event's kind, or a delivery's status
    at: datetime | None
    issue_id: int | None
    issue_label: str | None  # "#3 Subject"
    detail: str | None  # a click's url, a bounce's diagnostic, the last SMTP reply


@dataclass(frozen=True, slots=True)
class History:
    events: list[HistoryLine]
    deliveries: list[HistoryLine]


def _label(number: int | None, subject: str | None) -> str | None:
    return None if number is None else f"#{number} {subject or ''}".strip()


async def history(session: AsyncSession, subscription_id: int) -> History:
    """The latest events and deliveries of one subscription, newest first."""
    events = await browse_repository.recent_events(session, subscription_id, HISTORY_SHOWN)
    event_lines = [
        HistoryLine(
            kind=event.kind,
            at=event.created_at,
            issue_id=event.issue_id,
            issue_label=_label(number, subject),
            detail=event.url or event.detail,
        )
        for event, number, subject in events
    ]
    deliveries = await browse_repository.recent_deliveries(session, subscription_id, HISTORY_SHOWN)
    delivery_lines = [
        HistoryLine(
            kind=delivery.status,
            at=delivery.sent_at or delivery.updated_at,
            issue_id=delivery.issue_id,
            issue_label=_label(number, subject),
            detail=delivery.last_reply,
        )
        for delivery, number, subject in deliveries
    ]
    return History(events=event_lines, deliveries=delivery_lines)
