"""`/admin/newsletters/{slug}/issues`: a newsletter's issues, newest first; new, duplicate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.admin.deps import FormViewerDep, ViewerDep
from app.admin.progress import outcomes
from app.admin.web import redirect, render
from app.delivery import service as delivery
from app.issues import service as issues
from app.issues.deps import IssueDep
from app.issues.schemas import IssueCreate
from app.kit.clock import utcnow
from app.kit.deps import SessionDep
from app.models import Issue, IssueStatus
from app.newsletters.deps import NewsletterDep
from app.scheduling import service as scheduling

router = APIRouter(include_in_schema=False)

PAGE = 25
# An issue has delivery figures once its send started.
STARTED = frozenset(
    {
        IssueStatus.sending.value,
        IssueStatus.paused.value,
        IssueStatus.sent.value,
        IssueStatus.cancelled.value,
    }
)


# An issue whose send is over has settled outcomes; only late bounces, opens and clicks
# still move. Its stats count every delivery row of the issue (hundreds of milliseconds
# at a million recipients), so for a list of them they are kept a minute per process,
# as the subscribers screen keeps its counts. A sending or paused issue is counted live.
FINISHED = frozenset({IssueStatus.sent.value, IssueStatus.cancelled.value})
STATS_TTL = 60.0
_finished_stats: dict[tuple[int, str, datetime], tuple[float, dict[str, Any]]] = {}


async def issue_stats(session: AsyncSession, issue: Issue) -> dict[str, Any] | None:
    """The issue's delivery stats once its send started, else None."""
    if issue.status not in STARTED or issue.started_at is None:
        return None
    if issue.status not in FINISHED:
        return await delivery.stats(session, issue)
    # With the start time: an id used again (a database rebuilt) is another issue.
    key = (issue.id, issue.status, issue.started_at)
    now = time.monotonic()
    cached = _finished_stats.get(key)
    if cached is not None and now - cached[0] < STATS_TTL:
        return cached[1]
    stats = await delivery.stats(session, issue)
    if len(_finished_stats) > 1000:  # bounded: forget everything rather than grow
        _finished_stats.clear()
    _finished_stats[key] = (now, stats)
    return stats


@dataclass(frozen=True, slots=True)
class Row:
    issue: Issue
    stats: dict[str, Any] | None

    @property
    def done(self) -> int:
        return 0 if self.stats is None else outcomes(self.stats)


@router.get("/admin/newsletters/{slug}/issues")
async def issues_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    newsletter: NewsletterDep,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    found = await issues.newest_page(session, newsletter.id, before_id=before, limit=PAGE)
    shown = found[:PAGE]
    rows = [Row(issue, await issue_stats(session, issue)) for issue in shown]
    context = {
        "newsletter": newsletter,
        "tab": "issues",
        "rows": rows,
        "older": shown[-1].id if len(found) > PAGE else None,
        "paged": before is not None,
    }
    return render(request, viewer, "admin/issues.html", context)


@router.post("/admin/newsletters/{slug}/issues")
async def new_issue(
    request: Request, session: SessionDep, viewer: FormViewerDep, newsletter: NewsletterDep
) -> Response:
    """An empty draft, titled for the week of the next send; the editor takes over."""
    subject = scheduling.default_subject(newsletter, utcnow())
    issue = await issues.create_issue(session, newsletter, IssueCreate(subject=subject))
    await accounts.audit(
        session, viewer.actor, "issue.create", f"issue {issue.id}", f"#{issue.number}"
    )
    return redirect(request, f"/admin/issues/{issue.id}", f"Issue #{issue.number} is created.")


@router.post("/admin/issues/{issue_id}/duplicate")
async def duplicate(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    copy = await issues.duplicate_issue(session, issue.id)
    await accounts.audit(
        session, viewer.actor, "issue.duplicate", f"issue {copy.id}", f"from issue {issue.id}"
    )
    return redirect(
        request,
        f"/admin/issues/{copy.id}",
        f"Issue #{copy.number} is a copy of #{issue.number}: a draft to edit and send.",
    )
