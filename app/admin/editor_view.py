"""What the editor shows: the page (fields, stories, preview, checks, actions) and the
small fragment an autosave answers with."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.service import Viewer
from app.admin.editor_forms import ISSUE_FIELDS, Draft, label, local_input_value
from app.admin.web import render, zone
from app.issues import service as issues
from app.kit.clock import utcnow
from app.models import Issue, IssueStatus, Story
from app.pages.templates import templates

UNSENT = issues.EDITABLE | {IssueStatus.scheduled.value}
SEVERITY_CLASS = {"error": "finding-error", "warning": "finding-warn", "info": "finding-ok"}


def preview_version(issue: Issue) -> int:
    """Changes whenever the issue does, so the preview frame loads afresh."""
    return int(issue.updated_at.timestamp() * 1000)


def issue_url(issue: Issue) -> str:
    return f"/admin/issues/{issue.id}"


def _story_fields(story: Story) -> dict[str, str]:
    return {name: getattr(story, name) or "" for name in issues.STORY_FIELDS}


def _values(issue: Issue) -> dict[str, str]:
    return {name: getattr(issue, name) for name in ISSUE_FIELDS}


async def checks_context(request: Request, loaded: issues.Loaded) -> dict[str, Any]:
    state = request.app.state
    report = await issues.check_report(loaded, state.settings, state.signer)
    return {"report": report, "severity_class": SEVERITY_CLASS}


async def editor_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    issue_id: int,
    *,
    draft: Draft | None = None,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The editor of an unsent issue; `draft`/`typed` show input back with its `errors`."""
    loaded = await issues.load(session, issue_id)
    issue, newsletter = loaded.issue, loaded.newsletter
    shown_errors = dict(errors or {})
    if draft is not None:
        shown_errors.update(draft.errors)
    context: dict[str, Any] = {
        "issue": issue,
        "newsletter": newsletter,
        "tz": newsletter.timezone,
        "values": draft.values if draft else _values(issue),
        "stories": draft.stories if draft else [_story_fields(s) for s in loaded.stories],
        "errors": shown_errors,
        "error_list": [(name, label(name), text) for name, text in shown_errors.items()],
        "typed": typed or {},
        "editable": issue.status in issues.EDITABLE,
        "version": preview_version(issue),
        "schedule_value": local_input_value(issue.scheduled_at, newsletter.timezone),
        "test_to": viewer.email,
    }
    context.update(await checks_context(request, loaded))
    return render(request, viewer, "admin/editor.html", context, status_code=status_code)


def saved_at_text(tz: str) -> str:
    return f"Saved {utcnow().astimezone(zone(tz)):%H:%M}"


async def autosave_fragment(
    request: Request,
    session: AsyncSession,
    issue: Issue,
    *,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """ "Saved 14:02" (with the preview and checks swapped in anew), or why not."""
    context: dict[str, Any] = {"issue": issue, "problem": problem}
    if problem is None:
        loaded = await issues.load(session, issue.id)
        context["saved"] = saved_at_text(loaded.newsletter.timezone)
        context["version"] = preview_version(issue)
        context.update(await checks_context(request, loaded))
    return templates.TemplateResponse(
        request,
        "admin/_editor_saved.html",
        context,
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )
