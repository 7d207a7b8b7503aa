"""The editor's actions: test send, mark ready, schedule, unschedule, send now.

Each goes through the service the REST API uses (scheduling for ready and schedule,
delivery for test sends and the send itself) and is written to the audit log.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.accounts import service as accounts
from app.admin.deps import FormViewerDep, ViewerDep
from app.admin.editor_forms import FormProblem, read_addresses, read_local_time
from app.admin.editor_view import UNSENT, editor_page, issue_url
from app.admin.web import localtime, redirect, render
from app.delivery import service as delivery
from app.issues import service as issues
from app.issues.deps import IssueDep
from app.kit.clock import utcnow
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.errors import Conflict, Invalid
from app.models import IssueStatus
from app.scheduling import service as scheduling

router = APIRouter(include_in_schema=False)

TestTo = Annotated[str, Form(max_length=4000)]
At = Annotated[str, Form(max_length=40)]
SendKey = Annotated[str, Form(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post("/admin/issues/{issue_id}/test")
async def send_test(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    viewer: FormViewerDep,
    issue: IssueDep,
    to: TestTo = "",
) -> Response:
    """A test copy to a few addresses, through the outbox like every other mail."""
    addresses, problem = read_addresses(to)
    if problem:
        if issue.status not in UNSENT:
            raise FormProblem(problem)
        return await editor_page(
            request,
            session,
            viewer,
            issue.id,
            errors={"to": problem},
            typed={"to": to},
            status_code=400,
        )
    queued = await delivery.queue_test_send(session, issue, addresses, settings, signer)
    await accounts.audit(
        session, viewer.actor, "issue.test", f"issue {issue.id}", ", ".join(addresses)
    )
    return redirect(request, issue_url(issue), f"Test sent to {', '.join(addresses)} ({queued}).")


@router.post("/admin/issues/{issue_id}/ready")
async def mark_ready(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    try:
        await scheduling.mark_ready(session, issue, now=utcnow())
    except Invalid as exc:
        return redirect(request, issue_url(issue), f"Not ready: {exc.message}.", kind="error")
    await accounts.audit(session, viewer.actor, "issue.ready", f"issue {issue.id}")
    return redirect(request, issue_url(issue), "Marked ready: the next scheduled send takes it.")


@router.post("/admin/issues/{issue_id}/draft")
async def back_to_draft(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    await scheduling.unmark_ready(session, issue)
    await accounts.audit(session, viewer.actor, "issue.unready", f"issue {issue.id}")
    return redirect(request, issue_url(issue), "Back to draft.")


@router.post("/admin/issues/{issue_id}/schedule")
async def schedule(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep, at: At = ""
) -> Response:
    """At a time read in the newsletter's zone (a datetime-local field has no zone)."""
    loaded = await issues.load(session, issue.id)
    tz = loaded.newsletter.timezone
    try:
        when = read_local_time(at, tz)
        scheduled = await scheduling.schedule(session, issue, when, now=utcnow())
    except FormProblem as exc:
        problem = str(exc.detail)
    except Invalid as exc:
        problem = f"The time {exc.message}."
    else:
        shown = localtime(scheduled.scheduled_at, tz)
        await accounts.audit(session, viewer.actor, "issue.schedule", f"issue {issue.id}", shown)
        return redirect(request, issue_url(issue), f"Scheduled for {shown}.")
    if issue.status not in UNSENT:
        raise Conflict(f"issue {issue.id} is {issue.status}; it cannot be scheduled")
    return await editor_page(
        request,
        session,
        viewer,
        issue.id,
        errors={"at": problem},
        typed={"at": at},
        status_code=400,
    )


@router.post("/admin/issues/{issue_id}/unschedule")
async def unschedule(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    await scheduling.unschedule(session, issue)
    await accounts.audit(session, viewer.actor, "issue.unschedule", f"issue {issue.id}")
    return redirect(request, issue_url(issue), "Unscheduled: the issue is a draft again.")


@router.get("/admin/issues/{issue_id}/send")
async def confirm_send(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    viewer: ViewerDep,
    issue: IssueDep,
) -> Response:
    """ "Send '<subject>' to N subscribers of <newsletter>?", with the checks' errors."""
    if issue.status not in UNSENT:
        return redirect(request, issue_url(issue), f"This issue is already {issue.status}.")
    loaded = await issues.load(session, issue.id)
    recipients = await delivery.recipient_count(session, loaded.newsletter.id)
    report = await issues.check_report(loaded, settings, signer)
    context = {
        "issue": issue,
        "newsletter": loaded.newsletter,
        "recipients": recipients,
        "errors": [f for f in report.findings if f.severity == "error"],
        "send_key": secrets.token_urlsafe(18),
    }
    return render(request, viewer, "admin/editor_send.html", context)


@router.post("/admin/issues/{issue_id}/send")
async def send_now(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: FormViewerDep,
    issue: IssueDep,
    key: SendKey,
) -> Response:
    """Starts the send; the form's one-time key makes a double click answer the first."""
    first = issue.status in UNSENT  # else a repeat, answered from the first request
    answer = await delivery.send_once(session, issue, settings=settings, key=key)
    recipients = int(answer.body.get("recipients", 0))
    if first:
        await accounts.audit(
            session, viewer.actor, "issue.send", f"issue {issue.id}", f"{recipients} recipients"
        )
    done = "Sent" if issue.status == IssueStatus.sent.value else "Sending"
    return redirect(request, issue_url(issue), f"{done} to {recipients:,} subscribers.")
