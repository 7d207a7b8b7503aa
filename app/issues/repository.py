from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.errors import NotFound
from app.kit.sql import rowcount
from app.models import Issue, IssueStatus, Newsletter, Story, Subscriber, Subscription

# Concurrent creates in one newsletter may compute the same next number; the unique
# (newsletter_id, number) constraint refuses the loser, which retries in a savepoint.
_NUMBER_ATTEMPTS = 8


async def newsletter_by_slug(session: AsyncSession, slug: str) -> Newsletter | None:
    result = await session.execute(select(Newsletter).where(Newsletter.slug == slug))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, issue_id: int, *, for_update: bool = False) -> Issue | None:
    """The issue; with `for_update` its row stays locked to the end of the transaction
    (PostgreSQL), so a send cannot start between a status check and a change."""
    stmt = select(Issue).where(Issue.id == issue_id)
    if for_update:
        stmt = stmt.with_for_update()
    result = await session.execute(stmt.execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def get_newsletter(session: AsyncSession, newsletter_id: int) -> Newsletter:
    newsletter = await session.get(Newsletter, newsletter_id)
    assert newsletter is not None  # the foreign key guarantees it
    return newsletter


async def stories(session: AsyncSession, issue_id: int) -> list[Story]:
    result = await session.execute(
        select(Story).where(Story.issue_id == issue_id).order_by(Story.position)
    )
    return list(result.scalars())


async def insert_issue(session: AsyncSession, newsletter_id: int, values: dict[str, Any]) -> int:
    """Insert with the next number of the newsletter computed in the statement itself."""
    next_number = (
        select(func.coalesce(func.max(Issue.number), 0) + 1)
        .where(Issue.newsletter_id == newsletter_id)
        .scalar_subquery()
    )
    for attempt in range(_NUMBER_ATTEMPTS):
        try:
            async with session.begin_nested():
                result = await session.execute(
                    insert(Issue)
                    .values(newsletter_id=newsletter_id, number=next_number, **values)
                    .returning(Issue.id)
                )
                return int(result.scalar_one())
        except IntegrityError:
            if attempt == _NUMBER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def add_stories(
    session: AsyncSession, issue_id: int, items: Sequence[dict[str, Any]], *, start: int
) -> None:
    for offset, values in enumerate(items):
        session.add(Story(issue_id=issue_id, position=start + offset, **values))
    await session.flush()


async def append_story(session: AsyncSession, issue_id: int, values: dict[str, Any]) -> int:
    """Insert a story after the last one, its position computed in the statement itself.

    Two appends racing for one issue (SQLite reads outside the write lock) may compute
    the same position; the unique (issue_id, position) refuses the loser, which retries.
    """
    next_position = (
        select(func.coalesce(func.max(Story.position), -1) + 1)
        .where(Story.issue_id == issue_id)
        .scalar_subquery()
    )
    for attempt in range(_NUMBER_ATTEMPTS):
        try:
            async with session.begin_nested():
                result = await session.execute(
                    insert(Story)
                    .values(issue_id=issue_id, position=next_position, **values)
                    .returning(Story.id)
                )
                return int(result.scalar_one())
        except IntegrityError:
            if attempt == _NUMBER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def delete_stories(session: AsyncSession, issue_id: int) -> None:
    await session.execute(delete(Story).where(Story.issue_id == issue_id))


async def delete_issue(session: AsyncSession, issue: Issue) -> None:
    await session.execute(delete(Story).where(Story.issue_id == issue.id))
    await session.execute(delete(Issue).where(Issue.id == issue.id))


async def list_page(
    session: AsyncSession,
    newsletter_id: int,
    *,
    status: IssueStatus | None,
    after_id: int,
    limit: int,
) -> list[Issue]:
    stmt = select(Issue).where(Issue.newsletter_id == newsletter_id, Issue.id > after_id)
    if status is not None:
        stmt = stmt.where(Issue.status == status.value)
    result = await session.execute(stmt.order_by(Issue.id).limit(limit + 1))
    return list(result.scalars())


async def sent_issues(session: AsyncSession, newsletter_id: int, *, limit: int) -> list[Issue]:
    """Sent issues, newest first."""
    result = await session.execute(
        select(Issue)
        .where(Issue.newsletter_id == newsletter_id, Issue.status == IssueStatus.sent.value)
        .order_by(Issue.number.desc())
        .limit(limit)
    )
    return list(result.scalars())


async def sent_issue(session: AsyncSession, newsletter_id: int, number: int) -> Issue | None:
    result = await session.execute(
        select(Issue).where(
            Issue.newsletter_id == newsletter_id,
            Issue.number == number,
            Issue.status == IssueStatus.sent.value,
        )
    )
    return result.scalar_one_or_none()


async def subscription_for(
    session: AsyncSession, newsletter_id: int, email: str
) -> tuple[int, str] | None:
    """(subscription id, subscriber name) when `email` is subscribed to the newsletter."""
    result = await session.execute(
        select(Subscription.id, Subscriber.name)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.newsletter_id == newsletter_id, Subscriber.email == email)
    )
    row = result.first()
    return (int(row[0]), str(row[1] or "")) if row else None


async def move_status(
    session: AsyncSession,
    issue_id: int,
    from_statuses: Sequence[str],
    values: dict[str, Any],
    *,
    scheduled_at: datetime | None = None,
) -> bool:
    """The one conditional UPDATE of an issue's state (see app.issues.lifecycle)."""
    stmt = (
        update(Issue)
        .where(Issue.id == issue_id, Issue.status.in_(list(from_statuses)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if scheduled_at is not None:
        stmt = stmt.where(Issue.scheduled_at == scheduled_at)
    return rowcount(await session.execute(stmt)) > 0


async def current_status(session: AsyncSession, issue_id: int) -> str:
    status = (
        await session.execute(select(Issue.status).where(Issue.id == issue_id))
    ).scalar_one_or_none()
    if status is None:
        raise NotFound("no such issue")
    return str(status)


async def newest_page(
    session: AsyncSession, newsletter_id: int, *, before_id: int | None, limit: int
) -> list[Issue]:
    """A newsletter's issues, newest first, before `before_id` (keyset; one extra row
    tells whether another page follows)."""
    stmt = select(Issue).where(Issue.newsletter_id == newsletter_id)
    if before_id is not None:
        stmt = stmt.where(Issue.id < before_id)
    result = await session.execute(stmt.order_by(Issue.id.desc()).limit(limit + 1))
    return list(result.scalars())


async def in_progress(session: AsyncSession, limit: int) -> list[Issue]:
    """Issues sending or paused, the earliest started first."""
    active = [IssueStatus.sending.value, IssueStatus.paused.value]
    result = await session.execute(
        select(Issue).where(Issue.status.in_(active)).order_by(Issue.id).limit(limit)
    )
    return list(result.scalars())
