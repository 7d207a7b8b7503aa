"""`/admin`: every newsletter with its subscribers, what is sending, what is next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.deps import ViewerDep
from app.admin.progress import outcomes
from app.admin.web import render
from app.delivery import service as delivery
from app.issues import service as issues
from app.kit.clock import utcnow
from app.kit.deps import SessionDep, SettingsDep
from app.models import Issue, Newsletter
from app.newsletters import service as newsletters
from app.scheduling import service as scheduling
from app.scheduling.schemas import IssueSummary, ScheduleOverview
from app.settings import Settings
from app.subscribers import service as subscribers

router = APIRouter(include_in_schema=False)

SHOWN = 200
SENDING_SHOWN = 10


@dataclass(frozen=True, slots=True)
class NextSend:
    """The next send of a newsletter: when, which issue, and why then."""

    at: datetime
    issue: IssueSummary | None
    how: str  # "scheduled", "cron" (a ready issue) or "hands-off" (the upcoming draft)


@dataclass(frozen=True, slots=True)
class Sending:
    issue: Issue
    newsletter: Newsletter | None
    stats: dict[str, Any]

    @property
    def done(self) -> int:
        return outcomes(self.stats)


def next_send(overview: ScheduleOverview) -> NextSend | None:
    """What goes out first: a one-off schedule, or the next cron tick when it has an
    issue to send (a ready one, or in hands-off mode the upcoming draft with stories)."""
    candidates: list[NextSend] = []
    first = overview.scheduled[0] if overview.scheduled else None
    if first is not None and first.scheduled_at is not None:
        candidates.append(NextSend(first.scheduled_at, first, "scheduled"))
    if overview.next_ticks:
        tick = overview.next_ticks[0].utc
        upcoming = overview.upcoming
        if overview.ready:
            candidates.append(NextSend(tick, overview.ready[0], "cron"))
        elif overview.auto_send_upcoming and upcoming is not None and upcoming.stories:
            candidates.append(NextSend(tick, upcoming, "hands-off"))
    return min(candidates, key=lambda c: c.at) if candidates else None


async def _sending_now(session: AsyncSession, by_id: dict[int, Newsletter]) -> list[Sending]:
    found = []
    for issue in await issues.in_progress(session, limit=SENDING_SHOWN):
        stats = await delivery.stats(session, issue)
        found.append(Sending(issue, by_id.get(issue.newsletter_id), stats))
    return found


async def _next_sends(
    session: AsyncSession, shown: list[Newsletter], settings: Settings
) -> dict[int, NextSend]:
    now = utcnow()
    found: dict[int, NextSend] = {}
    for newsletter in shown:
        overview = await scheduling.overview(session, newsletter, settings=settings, now=now)
        upcoming = next_send(overview)
        if upcoming is not None:
            found[newsletter.id] = upcoming
    return found


@router.get("/admin")
async def home(
    request: Request, session: SessionDep, settings: SettingsDep, viewer: ViewerDep
) -> Response:
    shown = (await newsletters.list_page(session, after_id=0, limit=SHOWN))[:SHOWN]
    by_id = {n.id: n for n in shown}
    # The counters the database keeps (migration 0008): one small read per newsletter.
    counts = {n.id: (await subscribers.status_counts(session, n))["active"] for n in shown}
    context = {
        "newsletters": shown,
        "counts": counts,
        "sending": await _sending_now(session, by_id),
        "next_sends": await _next_sends(session, shown, settings),
    }
    return render(request, viewer, "admin/home.html", context)
