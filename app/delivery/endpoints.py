"""Send, control and watch an issue's delivery (editor API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from app.accounts import service as accounts
from app.delivery import service
from app.delivery.schemas import (
    CancelResult,
    DeliveryItem,
    IssueState,
    IssueStats,
    Requeued,
    SendStarted,
)
from app.issues import service as issues_service
from app.issues.deps import IssueDep
from app.issues.schemas import TestSend, TestSendQueued
from app.keys.deps import EditorKey
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.pagination import Page, PageParamsDep, make_page

router = APIRouter(prefix="/api/v1/issues", tags=["delivery"])

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
    session: SessionDep,
    settings: SettingsDep,
    key: EditorKey,
    issue: IssueDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Enqueue the issue to every active subscriber now; a repeat never enqueues twice."""
    answer = await service.send_once(session, issue, settings=settings, key=idempotency_key)
    if answer.status_code == 202 and not answer.replayed:
        detail = f"{answer.body.get('recipients')} recipients"
        await accounts.audit(session, key.actor, "issue.send", f"issue {issue.id}", detail)
    return JSONResponse(answer.body, status_code=answer.status_code)


@router.post("/{issue_id}/test", status_code=202, response_model=TestSendQueued)
async def send_test(
    body: TestSend,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    _key: EditorKey,
    issue: IssueDep,
) -> TestSendQueued:
    """Send the issue now to these addresses only (not counted in the stats)."""
    queued = await service.queue_test_send(session, issue, body.to, settings, signer)
    return TestSendQueued(queued=queued)


@router.post("/{issue_id}/pause", response_model=IssueState)
async def pause_issue(session: SessionDep, key: EditorKey, issue: IssueDep) -> IssueState:
    await service.pause(session, issue)
    await accounts.audit(session, key.actor, "issue.pause", f"issue {issue.id}")
    return IssueState(id=issue.id, status=issue.status, pause_reason=issue.pause_reason)


@router.post("/{issue_id}/resume", response_model=IssueState)
async def resume_issue(session: SessionDep, key: EditorKey, issue: IssueDep) -> IssueState:
    await service.resume(session, issue)
    await accounts.audit(session, key.actor, "issue.resume", f"issue {issue.id}")
    return IssueState(id=issue.id, status=issue.status, pause_reason=None)


@router.post("/{issue_id}/cancel", response_model=CancelResult)
async def cancel_issue(session: SessionDep, key: EditorKey, issue: IssueDep) -> CancelResult:
    cancelled = await service.cancel(session, issue)
    detail = f"{cancelled} deliveries cancelled"
    await accounts.audit(session, key.actor, "issue.cancel", f"issue {issue.id}", detail)
    return CancelResult(id=issue.id, status=issue.status, cancelled=cancelled)


@router.post("/{issue_id}/resend-failed", status_code=202, response_model=Requeued)
async def resend_failed(session: SessionDep, key: EditorKey, issue: IssueDep) -> Requeued:
    """A new run of attempts for every delivery of the issue that ended `failed`."""
    requeued = await service.resend_failed(session, issue)
    detail = f"{requeued} requeued"
    await accounts.audit(session, key.actor, "issue.resend-failed", f"issue {issue.id}", detail)
    status = await issues_service.current_status(session, issue.id)
    return Requeued(requeued=requeued, status=status)


@router.get("/{issue_id}/stats", response_model=IssueStats)
async def issue_stats(session: SessionDep, _key: EditorKey, issue: IssueDep) -> IssueStats:
    return IssueStats(**await service.stats(session, issue))


@router.get("/{issue_id}/deliveries", response_model=Page[DeliveryItem])
async def issue_deliveries(
    session: SessionDep,
    page: PageParamsDep,
    _key: EditorKey,
    issue: IssueDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> Page[DeliveryItem]:
    """Per-recipient outcome with the last SMTP reply, by id (cursor pagination)."""
    rows = await service.list_deliveries(
        session, issue.id, status=status, after_id=page.after_id, limit=page.limit
    )
    items = [DeliveryItem(**row._asdict()) for row in rows]
    return make_page(items, [row.id for row in rows], page.limit)
