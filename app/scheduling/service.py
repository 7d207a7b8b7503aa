"""Rules of scheduling from the editor's side: ready, one-off schedules, the upcoming
draft that collects the week's stories, and the schedule overview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.issues import lifecycle
from app.issues import service as issues_service
from app.issues.lifecycle import Action
from app.issues.schemas import IssueCreate, StoryIn
from app.kit.cron import CronError, next_ticks, validate_cron, validate_timezone
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import Issue, IssueStatus, Newsletter, Story
from app.scheduling import repository
from app.scheduling.schemas import (
    IssueSummary,
    ScheduleOverview,
    TickRecord,
    TickTime,
)
from app.settings import Settings

NEXT_TICKS = 5
RECENT_TICKS = 20
LISTED_ISSUES = 50
MAX_SCHEDULE_AHEAD = timedelta(days=3653)


def _conflict(issue: Issue, action: str) -> Conflict:
    return Conflict(f"issue {issue.id} is {issue.status}; it cannot be {action}")


async def _require_content(session: AsyncSession, issue: Issue) -> None:
    counts = await repository.story_counts(session, [issue.id])
    if not counts.get(issue.id) and not issue.intro.strip():
        raise Invalid("issue", "the issue is empty: add a story or an intro first", where="path")


async def _fresh(session: AsyncSession, issue_id: int) -> Issue:
    issue = await repository.get_issue(session, issue_id)
    if issue is None:  # deleted by a concurrent request
        raise NotFound(f"no issue with the id {issue_id}")
    return issue


async def mark_ready(session: AsyncSession, issue: Issue, *, now: datetime) -> Issue:
    """draft -> ready: the next issue for the newsletter's cron schedule.

    Marking a ready issue ready again changes nothing (a retried request succeeds).
    """
    if issue.status == IssueStatus.ready.value:
        return issue
    if issue.status != IssueStatus.draft.value:
        raise _conflict(issue, "marked ready")
    await _require_content(session, issue)
    moved = await lifecycle.move(
        session, issue.id, Action.mark_ready, ready_at=now, scheduled_at=None
    )
    issue = await _fresh(session, issue.id)
    if not moved and issue.status != IssueStatus.ready.value:
        raise _conflict(issue, "marked ready")
    return issue


async def unmark_ready(session: AsyncSession, issue: Issue) -> Issue:
    """ready -> draft."""
    if issue.status == IssueStatus.draft.value:
        return issue
    moved = await lifecycle.move(session, issue.id, Action.unmark_ready, ready_at=None)
    issue = await _fresh(session, issue.id)
    if not moved:
        raise _conflict(issue, "moved back to draft")
    return issue


async def schedule(session: AsyncSession, issue: Issue, at: datetime, *, now: datetime) -> Issue:
    """draft, ready or scheduled -> scheduled at `at` (an aware time in the future)."""
    if at.tzinfo is None:  # the schema refuses naive times; this guards other callers
        raise Invalid("at", "needs a UTC offset, e.g. 2026-12-07T09:00:00+01:00")
    try:
        at = at.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
        raise Invalid("at", "is too far in the future") from None
    if at <= now:
        raise Invalid("at", f"is in the past (now is {now.isoformat()})")
    if at > now + MAX_SCHEDULE_AHEAD:
        raise Invalid("at", "is more than ten years ahead")
    if IssueStatus(issue.status) not in lifecycle.allowed_from(Action.schedule):
        raise _conflict(issue, "scheduled")
    await _require_content(session, issue)
    moved = await lifecycle.move(session, issue.id, Action.schedule, scheduled_at=at, ready_at=None)
    issue = await _fresh(session, issue.id)
    if not moved:
        raise _conflict(issue, "scheduled")
    return issue


async def unschedule(session: AsyncSession, issue: Issue) -> Issue:
    """scheduled -> draft. A draft stays a draft (a retried request succeeds)."""
    if issue.status == IssueStatus.draft.value and issue.scheduled_at is None:
        return issue
    moved = await lifecycle.move(session, issue.id, Action.unschedule, scheduled_at=None)
    issue = await _fresh(session, issue.id)
    if not moved:
        raise _conflict(issue, "unscheduled")
    return issue


def default_subject(newsletter: Newsletter, now: datetime) -> str:
    """`{name} — week of {Monday}` for the week of the next tick (or of today)."""
    day = _next_tick_local(newsletter, now) or now.astimezone(_zone_or_utc(newsletter.timezone))
    monday = (day - timedelta(days=day.weekday())).date()
    return f"{newsletter.name} — week of {monday.day} {monday:%B %Y}"[:300]


def _zone_or_utc(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(validate_timezone(name))
    except CronError:
        return ZoneInfo("UTC")


def _next_tick_local(newsletter: Newsletter, now: datetime) -> datetime | None:
    if not newsletter.schedule_cron:
        return None
    try:
        ticks = next_ticks(
            validate_cron(newsletter.schedule_cron),
            validate_timezone(newsletter.timezone),
            now,
            1,
        )
    except (CronError, ValueError):
        return None
    return ticks[0].local if ticks else None


async def append_upcoming_story(
    session: AsyncSession, newsletter: Newsletter, data: StoryIn, *, now: datetime
) -> tuple[Issue, Story, bool]:
    """Append a story to the upcoming draft, creating the draft if there is none.

    The newsletter row is locked first, so concurrent calls queue up behind each other
    and the second one finds the draft the first one created. Creating the draft and
    appending the story are the issues feature's own operations (numbering, story
    positions, validation), so both routes to an issue behave the same.
    """
    await repository.lock_newsletter(session, newsletter.id)
    issue = await repository.upcoming_draft(session, newsletter.id, for_update=True)
    created = False
    if issue is None:
        issue = await issues_service.create_issue(
            session, newsletter, IssueCreate(subject=default_subject(newsletter, now))
        )
        created = True
    story_id = await issues_service.append_story(session, issue.id, data)
    story = await repository.get_story(session, story_id)
    return issue, story, created


async def summarise(session: AsyncSession, issues: list[Issue]) -> list[IssueSummary]:
    counts = await repository.story_counts(session, [issue.id for issue in issues])
    return [
        IssueSummary(
            id=issue.id,
            number=issue.number,
            subject=issue.subject,
            status=issue.status,
            stories=counts.get(issue.id, 0),
            ready_at=issue.ready_at,
            scheduled_at=issue.scheduled_at,
        )
        for issue in issues
    ]


async def overview(
    session: AsyncSession, newsletter: Newsletter, *, settings: Settings, now: datetime
) -> ScheduleOverview:
    ticks: list[TickTime] = []
    if newsletter.schedule_cron:
        try:
            cron = validate_cron(newsletter.schedule_cron)
            zone = validate_timezone(newsletter.timezone)
            ticks = [
                TickTime(local=tick.local, utc=tick.utc)
                for tick in next_ticks(cron, zone, now, NEXT_TICKS)
            ]
        except (CronError, ValueError):
            # Stored before validation existed, or edited by hand: show no ticks rather
            # than fail; the runner logs the same problem.
            ticks = []
    upcoming = await repository.upcoming_draft(session, newsletter.id)
    ready = await repository.ready_issues(session, newsletter.id, LISTED_ISSUES)
    scheduled = await repository.scheduled_issues(session, newsletter.id, LISTED_ISSUES)
    summaries = await summarise(session, [*([upcoming] if upcoming else []), *ready, *scheduled])
    upcoming_summary = summaries.pop(0) if upcoming else None
    recent = await repository.recent_ticks(session, newsletter.id, RECENT_TICKS)
    return ScheduleOverview(
        cron=newsletter.schedule_cron,
        timezone=newsletter.timezone,
        auto_send_upcoming=newsletter.auto_send_upcoming,
        grace_hours=settings.schedule_grace_hours,
        checked_through=newsletter.schedule_checked_at,
        next_ticks=ticks,
        upcoming=upcoming_summary,
        ready=summaries[: len(ready)],
        scheduled=summaries[len(ready) :],
        recent_ticks=[
            TickRecord(
                tick_at=tick.tick_at,
                outcome=tick.outcome,
                issue_id=tick.issue_id,
                detail=tick.detail,
            )
            for tick in recent
        ],
    )
