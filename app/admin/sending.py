"""An issue's page while and after it sends: live progress, controls, the way to the report.

`send_view` renders the page; the editor's route at `/admin/issues/{id}` calls it for an
issue that is sending, paused, sent or cancelled. The progress panel polls
`/admin/issues/{id}/progress` every 2 s with htmx (a page without JavaScript offers a
Refresh link instead) and stops once the send is over. When the issue's status moved
since the page was drawn (paused by another editor, finished), the poll's answer brings
the page's links and controls for the new state along (htmx out-of-band swaps).

The controls are forms posting to `/pause`, `/resume`, `/cancel` and `/resend-failed`:
the same delivery service as the REST API, so the same rules; a move the issue's state
does not allow comes back as an error message on the page, not a 409 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.admin import progress as measuring
from app.admin.deps import FormViewerDep, ViewerDep
from app.admin.web import number, redirect, render
from app.delivery import service as delivery
from app.issues import service as issues
from app.issues.deps import IssueDep
from app.kit.deps import SessionDep
from app.kit.errors import Conflict
from app.kit.ids import IdPath
from app.models import Issue, Newsletter

router = APIRouter(include_in_schema=False)


def issue_url(issue_id: int) -> str:
    return f"/admin/issues/{issue_id}"


async def _progress(request: Request, session: AsyncSession, issue: Issue) -> measuring.Progress:
    stats = await delivery.stats(session, issue)
    before = measuring.previous_sample(request.query_params)
    return measuring.measure(stats, before)


async def send_view(
    request: Request, session: AsyncSession, viewer: Viewer, issue: Issue, newsletter: Newsletter
) -> Response:
    """The page of an issue that is sending, paused, sent or cancelled."""
    progress = await _progress(request, session, issue)
    return render(
        request,
        viewer,
        "admin/issue_sending.html",
        {
            "issue": issue,
            "newsletter": newsletter,
            "newsletter_tz": newsletter.timezone,
            "newsletter_slug": newsletter.slug,
            "progress": progress,
        },
    )


@router.get("/admin/issues/{issue_id}/progress")
async def progress_panel(
    request: Request, session: SessionDep, viewer: ViewerDep, issue_id: IdPath
) -> Response:
    """The progress panel alone, for the page's poll (a lost session: see app.admin)."""
    loaded = await issues.load(session, issue_id)
    shown = measuring.shown_status(request.query_params)
    progress = await _progress(request, session, loaded.issue)
    context = {
        "issue": loaded.issue,
        "newsletter_tz": loaded.newsletter.timezone,
        "newsletter_slug": loaded.newsletter.slug,
        "progress": progress,
        # The links and controls on the page are for the old state: they come along.
        "moved": shown is not None and shown != progress.status,
    }
    return render(
        request, viewer, "admin/_progress.html", context, headers={"Cache-Control": "no-store"}
    )


Control = Callable[[AsyncSession, Issue], Awaitable[str]]


async def _pause(session: AsyncSession, issue: Issue) -> str:
    await delivery.pause(session, issue)
    return "Sending paused. Messages already handed to the mail server still go out."


async def _resume(session: AsyncSession, issue: Issue) -> str:
    await delivery.resume(session, issue)
    return "Sending resumed."


async def _cancel(session: AsyncSession, issue: Issue) -> str:
    cancelled = await delivery.cancel(session, issue)
    return f"Send cancelled: {number(cancelled)} queued messages will not be sent."


async def _resend(session: AsyncSession, issue: Issue) -> str:
    requeued = await delivery.resend_failed(session, issue)
    if requeued == 0:
        raise Conflict("there are no failed deliveries to send again")
    return f"{number(requeued)} failed deliveries queued to be sent again."


async def _control(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    issue: Issue,
    action: str,
    control: Control,
) -> Response:
    issue_id = issue.id
    try:
        message = await control(session, issue)
    except Conflict as exc:
        return redirect(
            request, issue_url(issue_id), f"Nothing was changed: {exc.detail}.", kind="error"
        )
    await accounts.audit(
        session, viewer.actor, f"issue.{action}", f"issue {issue_id}", issue.subject
    )
    return redirect(request, issue_url(issue_id), message)


@router.post("/admin/issues/{issue_id}/pause")
async def pause(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    return await _control(request, session, viewer, issue, "pause", _pause)


@router.post("/admin/issues/{issue_id}/resume")
async def resume(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    return await _control(request, session, viewer, issue, "resume", _resume)


@router.post("/admin/issues/{issue_id}/cancel")
async def cancel(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    return await _control(request, session, viewer, issue, "cancel", _cancel)


@router.post("/admin/issues/{issue_id}/resend-failed")
async def resend_failed(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    return await _control(request, session, viewer, issue, "resend-failed", _resend)
