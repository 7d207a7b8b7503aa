"""Send, control and watch an issue's delivery (editor API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse

from app.delivery import repository, service
from app.delivery.schemas import (
    CancelResult,
    DeliveryItem,
    IssueState,
    IssueStats,
    Requeued,
    SendStarted,
)
from app.issues import service as issues_service
from app.keys.deps import EditorKey
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import Conflict, Invalid
from app.kit.pagination import Page, PageParamsDep, make_page
from app.models import DeliveryStatus, IssueStatus

router = APIRouter(prefix="/api/v1/issues", tags=["delivery"])

# Ids are 64-bit in the database: a larger number is simply not found (never a 500).
IssueId = Annotated[int, Path(ge=1, le=2**63 - 1)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Makes a retried request answer the first result.",
    ),
]


@router.post("/{issue_id}/send", status_code=202, response_model=SendStarted)
async def send_issue(
    issue_id: IssueId,
    session: SessionDep,
    settings: SettingsDep,
    _key: EditorKey,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Enqueue the issue to every active subscriber now; a repeat never enqueues twice."""
    scope = f"send:{issue_id}"
    if idempotency_key:
        record = await service.find_idempotent(session, scope, idempotency_key)
        if record is not None:
            return JSONResponse(record.body, status_code=record.status_code)
    issue = await service.get_issue(session, issue_id)
    try:
        recipients = await service.start_send(session, issue, settings=settings)
    except Conflict:
        if idempotency_key:
            # The same request raced us and won: its answer is ours.
            record = await service.find_idempotent(session, scope, idempotency_key)
            if record is not None:
                return JSONResponse(record.body, status_code=record.status_code)
        raise
    body = SendStarted(status=IssueStatus.sending.value, recipients=recipients).model_dump()
    if idempotency_key:
        await service.remember_idempotent(session, scope, idempotency_key, 202, body)
    return JSONResponse(body, status_code=202)


@router.post("/{issue_id}/pause", response_model=IssueState)
async def pause_issue(issue_id: IssueId, session: SessionDep, _key: EditorKey) -> IssueState:
    issue = await service.get_issue(session, issue_id)
    await service.pause(session, issue)
    return IssueState(id=issue.id, status=issue.status, pause_reason=issue.pause_reason)


@router.post("/{issue_id}/resume", response_model=IssueState)
async def resume_issue(issue_id: IssueId, session: SessionDep, _key: EditorKey) -> IssueState:
    issue = await service.get_issue(session, issue_id)
    await service.resume(session, issue)
    return IssueState(id=issue.id, status=issue.status, pause_reason=None)


@router.post("/{issue_id}/cancel", response_model=CancelResult)
async def cancel_issue(issue_id: IssueId, session: SessionDep, _key: EditorKey) -> CancelResult:
    issue = await service.get_issue(session, issue_id)
    cancelled = await service.cancel(session, issue)
    return CancelResult(id=issue.id, status=issue.status, cancelled=cancelled)


@router.post("/{issue_id}/resend-failed", status_code=202, response_model=Requeued)
async def resend_failed(issue_id: IssueId, session: SessionDep, _key: EditorKey) -> Requeued:
    """A new run of attempts for every delivery of the issue that ended `failed`."""
    issue = await service.get_issue(session, issue_id)
    requeued = await service.resend_failed(session, issue)
    status = await issues_service.current_status(session, issue.id)
    return Requeued(requeued=requeued, status=status)


@router.get("/{issue_id}/stats", response_model=IssueStats)
async def issue_stats(issue_id: IssueId, session: SessionDep, _key: EditorKey) -> IssueStats:
    issue = await service.get_issue(session, issue_id)
    return IssueStats(**await service.stats(session, issue))


@router.get("/{issue_id}/deliveries", response_model=Page[DeliveryItem])
async def issue_deliveries(
    issue_id: IssueId,
    session: SessionDep,
    page: PageParamsDep,
    _key: EditorKey,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> Page[DeliveryItem]:
    """Per-recipient outcome with the last SMTP reply, by id (cursor pagination)."""
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        raise Invalid(
            "status",
            f"must be one of {', '.join(s.value for s in DeliveryStatus)}",
            where="query",
        )
    await service.get_issue(session, issue_id)
    rows = await repository.list_deliveries(
        session, issue_id, status=status, after_id=page.after_id, limit=page.limit
    )
    items = [DeliveryItem(**row._asdict()) for row in rows]
    return make_page(items, [row.id for row in rows], page.limit)
