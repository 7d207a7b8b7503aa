"""Editor API for issues (SPEC section 3): write, list, preview, test, check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.accounts import service as accounts
from app.issues import repository, service
from app.issues.deps import IssueDep
from app.issues.schemas import (
    CheckReport,
    IssueCreate,
    IssueRead,
    IssueSummary,
    IssueUpdate,
    StoryIn,
    StoryRead,
)
from app.keys.deps import EditorKey
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.pagination import Page, PageParamsDep, make_page
from app.models import Issue, IssueStatus, Newsletter, Story
from app.newsletters.deps import NewsletterDep

router = APIRouter(prefix="/api/v1", tags=["issues"])


def _summary(issue: Issue, newsletter: Newsletter) -> IssueSummary:
    return IssueSummary.model_validate(
        {**_columns(issue), "newsletter": newsletter.slug}, from_attributes=False
    )


def _columns(issue: Issue) -> dict[str, object]:
    return {column.key: getattr(issue, column.key) for column in Issue.__table__.columns}


def _read(issue: Issue, newsletter: Newsletter, stories: list[Story]) -> IssueRead:
    return IssueRead.model_validate(
        {
            **_columns(issue),
            "newsletter": newsletter.slug,
            "stories": [StoryRead.model_validate(s) for s in stories],
        }
    )


async def _full(session: SessionDep, issue_id: int) -> IssueRead:
    loaded = await service.load(session, issue_id)
    return _read(loaded.issue, loaded.newsletter, loaded.stories)


@router.post(
    "/newsletters/{slug}/issues", status_code=status.HTTP_201_CREATED, response_model=IssueRead
)
async def create_issue(
    body: IssueCreate, session: SessionDep, principal: EditorKey, newsletter: NewsletterDep
) -> IssueRead:
    issue = await service.create_issue(session, newsletter, body)
    await accounts.audit(
        session, principal.actor, "issue.create", f"issue {issue.id}", f"#{issue.number}"
    )
    return _read(issue, newsletter, await repository.stories(session, issue.id))


@router.get("/newsletters/{slug}/issues", response_model=Page[IssueSummary])
async def list_issues(
    session: SessionDep,
    _: EditorKey,
    newsletter: NewsletterDep,
    page: PageParamsDep,
    status_filter: Annotated[IssueStatus | None, Query(alias="status")] = None,
) -> Page[IssueSummary]:
    rows = await repository.list_page(
        session, newsletter.id, status=status_filter, after_id=page.after_id, limit=page.limit
    )
    return make_page([_summary(r, newsletter) for r in rows], [r.id for r in rows], page.limit)


@router.get("/issues/{issue_id}", response_model=IssueRead)
async def get_issue(session: SessionDep, _: EditorKey, issue: IssueDep) -> IssueRead:
    return await _full(session, issue.id)


@router.patch("/issues/{issue_id}", response_model=IssueRead)
async def update_issue(
    body: IssueUpdate, session: SessionDep, _: EditorKey, issue: IssueDep
) -> IssueRead:
    await service.update_issue(session, issue.id, body)
    return await _full(session, issue.id)


@router.delete("/issues/{issue_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_issue(session: SessionDep, principal: EditorKey, issue: IssueDep) -> None:
    await service.delete_issue(session, issue.id)
    await accounts.audit(
        session, principal.actor, "issue.delete", f"issue {issue.id}", f"#{issue.number}"
    )


@router.post(
    "/issues/{issue_id}/duplicate",
    status_code=status.HTTP_201_CREATED,
    response_model=IssueRead,
)
async def duplicate_issue(session: SessionDep, principal: EditorKey, issue: IssueDep) -> IssueRead:
    """A new draft with the same subject, preheader, intro, outro and stories."""
    copy = await service.duplicate_issue(session, issue.id)
    await accounts.audit(
        session, principal.actor, "issue.duplicate", f"issue {copy.id}", f"from issue {issue.id}"
    )
    return await _full(session, copy.id)


@router.post(
    "/issues/{issue_id}/stories", status_code=status.HTTP_201_CREATED, response_model=IssueRead
)
async def append_story(
    body: StoryIn, session: SessionDep, _: EditorKey, issue: IssueDep
) -> IssueRead:
    await service.append_story(session, issue.id, body)
    return await _full(session, issue.id)


_PREVIEW_TYPES = {
    "html": "text/html; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "eml": "message/rfc822",
}


@router.get(
    "/issues/{issue_id}/preview",
    response_class=Response,
    responses={200: {"content": {t: {} for t in _PREVIEW_TYPES.values()}}},
)
async def preview_issue(
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    _: EditorKey,
    issue: IssueDep,
    format: Annotated[service.PreviewFormat, Query()] = "html",
) -> Response:
    """Exactly what a subscriber gets, for a sample subscriber ("Alex Reader")."""
    shown = await service.preview(await service.load(session, issue.id), settings, signer)
    headers = {"Cache-Control": "no-store"}
    if format == "eml":
        headers["Content-Disposition"] = f'inline; filename="issue-{issue.number}.eml"'
        return Response(shown.message, media_type=_PREVIEW_TYPES["eml"], headers=headers)
    body = shown.html if format == "html" else shown.text
    return Response(body, media_type=_PREVIEW_TYPES[format], headers=headers)


@router.get("/issues/{issue_id}/check", response_model=CheckReport)
async def check_issue(
    session: SessionDep, settings: SettingsDep, signer: SignerDep, _: EditorKey, issue: IssueDep
) -> CheckReport:
    return await service.check_report(await service.load(session, issue.id), settings, signer)
