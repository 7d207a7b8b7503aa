"""`/admin/issues/{id}`: the issue editor (SPEC section 11).

An unsent issue (draft, ready, scheduled) opens in the editor: its fields and stories in
Markdown beside a preview of exactly the email a subscriber gets, the pre-send checks,
test send, ready, schedule and send. A sending or finished issue shows its send view
(`app.admin.sending`). Every change goes through the issues service the REST API uses.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.admin import editor_actions, editor_stories, sending
from app.admin.deps import FormViewerDep, ViewerDep
from app.admin.editor_forms import label, read_draft
from app.admin.editor_view import UNSENT, autosave_fragment, editor_page, issue_url
from app.admin.web import redirect
from app.issues import service as issues
from app.issues.deps import IssueDep
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.errors import Conflict
from app.kit.web import csp_header

router = APIRouter(include_in_schema=False)
router.include_router(editor_stories.router)
router.include_router(editor_actions.router)

# The preview is the email itself: its inline styles and the editor's images from
# anywhere, never a script, and framed only by the dashboard.
PREVIEW_HEADERS = {
    **csp_header(
        default_src="'none'",
        style_src="'unsafe-inline'",
        img_src="'self' data: https: http:",
        script_src="'none'",
        form_action="'none'",
        frame_ancestors="'self'",
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "private, max-age=60",
}


@router.get("/admin/issues/{issue_id}")
async def issue_page(
    request: Request, session: SessionDep, viewer: ViewerDep, issue: IssueDep
) -> Response:
    if issue.status not in UNSENT:
        loaded = await issues.load(session, issue.id)
        return await sending.send_view(request, session, viewer, issue, loaded.newsletter)
    return await editor_page(request, session, viewer, issue.id)


@router.post("/admin/issues/{issue_id}")
async def save(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    """The Save button: everything in the form, then back to the editor."""
    issues.ensure_editable(issue)
    draft = read_draft(await request.form())
    if draft.update is None:
        return await editor_page(request, session, viewer, issue.id, draft=draft, status_code=400)
    await issues.update_issue(session, issue.id, draft.update)
    return redirect(request, issue_url(issue), "Saved.")


@router.post("/admin/issues/{issue_id}/autosave")
async def autosave(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    """What htmx posts while the editor types: a small "Saved 14:02" fragment.

    htmx swaps only 2xx answers, so to htmx a refusal is a 200 fragment saying why; any
    other client gets the refusal's own status.
    """
    refused = 200 if request.headers.get("hx-request") == "true" else 0
    try:
        issues.ensure_editable(issue)
    except Conflict:
        problem = f"Not saved: the issue is {issue.status}."
        return await autosave_fragment(
            request, session, issue, problem=problem, status_code=refused or 409
        )
    draft = read_draft(await request.form())
    if draft.update is None:
        name, message = next(iter(draft.errors.items()))
        problem = f"Not saved: {label(name)} {message}."
        return await autosave_fragment(
            request, session, issue, problem=problem, status_code=refused or 400
        )
    saved = await issues.update_issue(session, issue.id, draft.update)
    return await autosave_fragment(request, session, saved)


@router.get("/admin/issues/{issue_id}/preview")
async def preview(
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    viewer: ViewerDep,
    issue: IssueDep,
) -> Response:
    """The HTML part of the message the sample subscriber would get, for the frame."""
    shown = await issues.preview(await issues.load(session, issue.id), settings, signer)
    return Response(shown.html, media_type="text/html; charset=utf-8", headers=PREVIEW_HEADERS)
