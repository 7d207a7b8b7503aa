"""The editor's story buttons: add, move up, move down, remove.

Each is a submit button of the editor's one form (`formaction`), so it works without
JavaScript and saves what was typed in the other fields first. Stories are addressed by
their place in the form; the issue's stories are written back whole, as PATCH does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from app.admin.deps import FormViewerDep
from app.admin.editor_forms import Draft, read_draft, read_new_story, story_payload
from app.admin.editor_view import editor_page, issue_url
from app.admin.web import redirect
from app.issues import service as issues
from app.issues.deps import IssueDep
from app.issues.schemas import MAX_STORIES, IssueUpdate, StoryIn
from app.kit.deps import SessionDep
from app.kit.errors import BadRequest

router = APIRouter(include_in_schema=False)

Index = Annotated[int, Path(ge=0, le=MAX_STORIES)]


async def _typed(request: Request) -> Draft:
    return read_draft(await request.form())


def _stories(draft: Draft) -> list[StoryIn]:
    assert draft.update is not None
    assert draft.update.stories is not None
    return list(draft.update.stories)


async def _save(
    session: SessionDep, issue_id: int, draft: Draft, stories: Sequence[StoryIn | dict[str, Any]]
) -> None:
    """The typed issue fields with these stories, in this order."""
    body = {**draft.values, "stories": list(stories)}
    await issues.update_issue(session, issue_id, IssueUpdate.model_validate(body))


def _in_range(index: int, stories: Sequence[object]) -> None:
    if index >= len(stories):
        raise BadRequest(f"there is no story {index + 1} in this issue")


@router.post("/admin/issues/{issue_id}/stories/add")
async def add_story(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep
) -> Response:
    issues.ensure_editable(issue)
    draft = await _typed(request)
    typed, story, errors = read_new_story(await request.form())
    if draft.update is None or story is None:
        return await editor_page(
            request,
            session,
            viewer,
            issue.id,
            draft=draft,
            errors=errors,
            typed=typed,
            status_code=400,
        )
    stories = _stories(draft)
    if len(stories) >= MAX_STORIES:
        raise BadRequest(f"an issue has at most {MAX_STORIES} stories")
    await _save(session, issue.id, draft, [*stories, story])
    return redirect(request, f"{issue_url(issue)}#story-{len(stories)}", "Story added.")


async def _move(
    request: Request,
    session: SessionDep,
    viewer: FormViewerDep,
    issue_id: int,
    index: int,
    offset: int,
) -> Response:
    draft = await _typed(request)
    if draft.update is None:
        return await editor_page(request, session, viewer, issue_id, draft=draft, status_code=400)
    stories = _stories(draft)
    _in_range(index, stories)
    target = index + offset
    moved = 0 <= target < len(stories)  # else the first up or the last down: saved in place
    if moved:
        stories[index], stories[target] = stories[target], stories[index]
    await _save(session, issue_id, draft, stories)
    place = target if moved else index
    return redirect(
        request, f"/admin/issues/{issue_id}#story-{place}", "Story moved." if moved else None
    )


@router.post("/admin/issues/{issue_id}/stories/{index}/up")
async def move_up(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep, index: Index
) -> Response:
    issues.ensure_editable(issue)
    return await _move(request, session, viewer, issue.id, index, -1)


@router.post("/admin/issues/{issue_id}/stories/{index}/down")
async def move_down(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep, index: Index
) -> Response:
    issues.ensure_editable(issue)
    return await _move(request, session, viewer, issue.id, index, 1)


@router.post("/admin/issues/{issue_id}/stories/{index}/remove")
async def remove_story(
    request: Request, session: SessionDep, viewer: FormViewerDep, issue: IssueDep, index: Index
) -> Response:
    """Removes the story; the other fields are saved as typed (a story being removed
    may be half-written, so its own fields are not checked)."""
    issues.ensure_editable(issue)
    form = await request.form()
    draft = read_draft(form)
    _in_range(index, draft.stories)
    kept = [s for i, s in enumerate(draft.stories) if i != index]
    draft.errors = {k: v for k, v in draft.errors.items() if not k.startswith(f"story-{index}-")}
    if draft.errors:
        return await editor_page(request, session, viewer, issue.id, draft=draft, status_code=400)
    await _save(session, issue.id, draft, [story_payload(s) for s in kept])
    return redirect(request, issue_url(issue), "Story removed.")
