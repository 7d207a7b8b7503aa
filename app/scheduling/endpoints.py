"""Scheduling endpoints: ready, one-off schedule, the upcoming draft, the overview."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.accounts import service as accounts
from app.issues.deps import IssueDep
from app.issues.schemas import StoryIn, StoryRead
from app.keys.deps import EditorKey
from app.kit.clock import utcnow
from app.kit.deps import SessionDep, SettingsDep
from app.models import Issue
from app.newsletters.deps import NewsletterDep
from app.scheduling import service
from app.scheduling.schemas import (
    IssueSummary,
    ScheduleAt,
    ScheduleOverview,
    UpcomingStoryCreated,
)

router = APIRouter(prefix="/api/v1", tags=["scheduling"])


async def _summary(session: SessionDep, issue: Issue) -> IssueSummary:
    return (await service.summarise(session, [issue]))[0]


@router.post("/issues/{issue_id}/ready", response_model=IssueSummary)
async def mark_ready(key: EditorKey, issue: IssueDep, session: SessionDep) -> IssueSummary:
    """Make a draft the next issue for the newsletter's cron schedule."""
    issue = await service.mark_ready(session, issue, now=utcnow())
    await accounts.audit(session, key.actor, "issue.ready", f"issue {issue.id}")
    return await _summary(session, issue)


@router.delete("/issues/{issue_id}/ready", response_model=IssueSummary)
async def unmark_ready(key: EditorKey, issue: IssueDep, session: SessionDep) -> IssueSummary:
    """Take a ready issue back to draft."""
    issue = await service.unmark_ready(session, issue)
    await accounts.audit(session, key.actor, "issue.unready", f"issue {issue.id}")
    return await _summary(session, issue)


@router.post("/issues/{issue_id}/schedule", response_model=IssueSummary)
async def schedule_issue(
    key: EditorKey, body: ScheduleAt, issue: IssueDep, session: SessionDep
) -> IssueSummary:
    """Send the issue once at `at` (ISO-8601 with a UTC offset, in the future)."""
    issue = await service.schedule(session, issue, body.at, now=utcnow())
    at = f"at {body.at.isoformat()}"
    await accounts.audit(session, key.actor, "issue.schedule", f"issue {issue.id}", at)
    return await _summary(session, issue)


@router.delete("/issues/{issue_id}/schedule", response_model=IssueSummary)
async def unschedule_issue(key: EditorKey, issue: IssueDep, session: SessionDep) -> IssueSummary:
    """Cancel a one-off schedule; the issue is a draft again."""
    issue = await service.unschedule(session, issue)
    await accounts.audit(session, key.actor, "issue.unschedule", f"issue {issue.id}")
    return await _summary(session, issue)


@router.post("/issues/{issue_id}/unschedule", response_model=IssueSummary)
async def unschedule_issue_post(
    key: EditorKey, issue: IssueDep, session: SessionDep
) -> IssueSummary:
    """The same as DELETE .../schedule, for clients that only POST."""
    issue = await service.unschedule(session, issue)
    await accounts.audit(session, key.actor, "issue.unschedule", f"issue {issue.id}")
    return await _summary(session, issue)


@router.post(
    "/newsletters/{slug}/upcoming/stories",
    status_code=status.HTTP_201_CREATED,
    response_model=UpcomingStoryCreated,
)
async def append_upcoming_story(
    _: EditorKey, body: StoryIn, newsletter: NewsletterDep, session: SessionDep
) -> UpcomingStoryCreated:
    """Append a story to the upcoming draft (the newest draft), creating it if needed."""
    issue, story, created = await service.append_upcoming_story(
        session, newsletter, body, now=utcnow()
    )
    return UpcomingStoryCreated(
        issue=await _summary(session, issue),
        issue_created=created,
        story=StoryRead.model_validate(story),
    )


@router.get("/newsletters/{slug}/schedule", response_model=ScheduleOverview)
async def get_schedule(
    _: EditorKey, newsletter: NewsletterDep, session: SessionDep, settings: SettingsDep
) -> ScheduleOverview:
    """Next ticks (local and UTC), the upcoming, ready and scheduled issues, recent ticks."""
    return await service.overview(session, newsletter, settings=settings, now=utcnow())
