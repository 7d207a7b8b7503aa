"""Queries of the scheduler: due issues, tick rows, the upcoming draft.

Concurrency notes, for both databases:
- A conditional UPDATE (`... WHERE status = 'ready'`) is how a pass claims an issue.
  On PostgreSQL a second UPDATE of the same row waits for the first transaction and
  then re-checks its WHERE against the committed row, so it matches nothing; on SQLite
  the first write of a transaction takes the database's single write lock, so
  transactions that write are serialised and every read after the first write is fresh.
- `schedule_tick` has UNIQUE(newsletter_id, tick_at): the INSERT ... ON CONFLICT DO
  NOTHING that settles a tick is the lock; only the pass whose row went in acts.
- Lock order, everywhere: tick rows (ascending), then the newsletter row, then issue
  rows, so passes and the upcoming-story endpoint cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from app.kit.sql import insert_ignore, rowcount
from app.models import Issue, IssueStatus, Newsletter, ScheduleTick, Story


@dataclass(frozen=True, slots=True)
class ScheduledNewsletter:
    id: int
    slug: str
    cron: str
    timezone: str
    auto_send_upcoming: bool
    checked_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DueIssue:
    id: int
    newsletter_id: int
    slug: str
    number: int
    scheduled_at: datetime


async def scheduled_newsletters(session: AsyncSession) -> list[ScheduledNewsletter]:
    result = await session.execute(
        select(
            Newsletter.id,
            Newsletter.slug,
            Newsletter.schedule_cron,
            Newsletter.timezone,
            Newsletter.auto_send_upcoming,
            Newsletter.schedule_checked_at,
            Newsletter.updated_at,
        )
        .where(Newsletter.schedule_cron.is_not(None), Newsletter.schedule_cron != "")
        .order_by(Newsletter.id)
    )
    return [
        ScheduledNewsletter(
            id=row.id,
            slug=row.slug,
            cron=row.schedule_cron or "",
            timezone=row.timezone,
            auto_send_upcoming=row.auto_send_upcoming,
            checked_at=row.schedule_checked_at,
            updated_at=row.updated_at,
        )
        for row in result
    ]


async def due_scheduled_issues(session: AsyncSession, now: datetime, limit: int) -> list[DueIssue]:
    result = await session.execute(
        select(Issue.id, Issue.newsletter_id, Newsletter.slug, Issue.number, Issue.scheduled_at)
        .join(Newsletter, Newsletter.id == Issue.newsletter_id)
        .where(Issue.status == IssueStatus.scheduled.value, Issue.scheduled_at <= now)
        .order_by(Issue.scheduled_at, Issue.id)
        .limit(limit)
    )
    return [
        DueIssue(
            id=row.id,
            newsletter_id=row.newsletter_id,
            slug=row.slug,
            number=row.number,
            scheduled_at=row.scheduled_at,
        )
        for row in result
    ]


async def claim_issue(
    session: AsyncSession,
    issue_id: int,
    status: IssueStatus,
    now: datetime,
    *,
    due_by: datetime | None = None,
) -> bool:
    """Lock the issue if it is still in `status` (and due by `due_by`); True if it was.

    The row is written (only `updated_at`) so that the lock is held to the end of the
    transaction and a concurrent claim of the same row finds it already changed.
    """
    stmt = (
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == status.value)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if due_by is not None:
        stmt = stmt.where(Issue.scheduled_at <= due_by)
    result = await session.execute(stmt)
    return rowcount(result) > 0


async def get_issue(session: AsyncSession, issue_id: int) -> Issue | None:
    result = await session.execute(
        select(Issue).where(Issue.id == issue_id).execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def get_story(session: AsyncSession, story_id: int) -> Story:
    result = await session.execute(select(Story).where(Story.id == story_id))
    return result.scalar_one()


async def load_issue_for_send(session: AsyncSession, issue_id: int) -> Issue:
    """The issue with its stories and newsletter loaded, fresh from the database."""
    result = await session.execute(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(selectinload(Issue.stories), joinedload(Issue.newsletter))
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def story_counts(session: AsyncSession, issue_ids: list[int]) -> dict[int, int]:
    if not issue_ids:
        return {}
    result = await session.execute(
        select(Story.issue_id, func.count())
        .where(Story.issue_id.in_(issue_ids))
        .group_by(Story.issue_id)
    )
    return {row[0]: int(row[1]) for row in result}


async def ready_issue_ids(session: AsyncSession, newsletter_id: int, limit: int) -> list[int]:
    """Ready issues, the one marked ready first at the head."""
    result = await session.execute(
        select(Issue.id)
        .where(Issue.newsletter_id == newsletter_id, Issue.status == IssueStatus.ready.value)
        .order_by(Issue.ready_at.asc().nulls_last(), Issue.id)
        .limit(limit)
    )
    return list(result.scalars())


async def ready_issues(session: AsyncSession, newsletter_id: int, limit: int) -> list[Issue]:
    result = await session.execute(
        select(Issue)
        .where(Issue.newsletter_id == newsletter_id, Issue.status == IssueStatus.ready.value)
        .order_by(Issue.ready_at.asc().nulls_last(), Issue.id)
        .limit(limit)
    )
    return list(result.scalars())


async def scheduled_issues(session: AsyncSession, newsletter_id: int, limit: int) -> list[Issue]:
    result = await session.execute(
        select(Issue)
        .where(Issue.newsletter_id == newsletter_id, Issue.status == IssueStatus.scheduled.value)
        .order_by(Issue.scheduled_at, Issue.id)
        .limit(limit)
    )
    return list(result.scalars())


async def upcoming_draft(
    session: AsyncSession, newsletter_id: int, *, for_update: bool = False
) -> Issue | None:
    """THE upcoming issue: the newsletter's draft with the highest number."""
    stmt = (
        select(Issue)
        .where(Issue.newsletter_id == newsletter_id, Issue.status == IssueStatus.draft.value)
        .order_by(Issue.number.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if for_update:
        # PostgreSQL: waits for a pass that is starting this draft, then re-checks the
        # status. SQLite compiles no FOR UPDATE; its write lock already serialises us.
        stmt = stmt.with_for_update()
    result = await session.execute(stmt)
    return result.scalar_one_or_none()


async def lock_newsletter(session: AsyncSession, newsletter_id: int) -> None:
    """Hold the newsletter row until the end of the transaction.

    An UPDATE rather than SELECT ... FOR UPDATE because it also takes SQLite's write
    lock up front, so the reads that follow see every committed draft on both databases.
    `updated_at` is set to itself so the newsletter does not look edited.
    """
    await session.execute(
        update(Newsletter)
        .where(Newsletter.id == newsletter_id)
        .values(updated_at=Newsletter.updated_at)
        .execution_options(synchronize_session=False)
    )


async def insert_tick(
    session: AsyncSession,
    *,
    newsletter_id: int,
    tick_at: datetime,
    outcome: str,
    issue_id: int | None = None,
    detail: str | None = None,
    now: datetime,
) -> bool:
    """Settle a tick; False when another pass already did (the unique row exists)."""
    inserted = await insert_ignore(
        session,
        ScheduleTick.__table__,  # type: ignore[arg-type]
        {
            "newsletter_id": newsletter_id,
            "tick_at": tick_at,
            "outcome": outcome,
            "issue_id": issue_id,
            "detail": detail,
            "created_at": now,
        },
        ["newsletter_id", "tick_at"],
    )
    return inserted == 1


async def record_tick_outcome(
    session: AsyncSession,
    *,
    newsletter_id: int,
    tick_at: datetime,
    outcome: str,
    issue_id: int | None,
    detail: str | None,
) -> None:
    await session.execute(
        update(ScheduleTick)
        .where(ScheduleTick.newsletter_id == newsletter_id, ScheduleTick.tick_at == tick_at)
        .values(outcome=outcome, issue_id=issue_id, detail=detail)
        .execution_options(synchronize_session=False)
    )


async def advance_checked_at(session: AsyncSession, newsletter_id: int, tick_at: datetime) -> None:
    """Move the newsletter's settled-through mark forward (never back)."""
    await session.execute(
        update(Newsletter)
        .where(
            Newsletter.id == newsletter_id,
            (Newsletter.schedule_checked_at.is_(None)) | (Newsletter.schedule_checked_at < tick_at),
        )
        .values(schedule_checked_at=tick_at, updated_at=Newsletter.updated_at)
        .execution_options(synchronize_session=False)
    )


async def recent_ticks(session: AsyncSession, newsletter_id: int, limit: int) -> list[ScheduleTick]:
    result = await session.execute(
        select(ScheduleTick)
        .where(ScheduleTick.newsletter_id == newsletter_id)
        .order_by(ScheduleTick.tick_at.desc())
        .limit(limit)
    )
    return list(result.scalars())
