"""Editor API for subscribers: list, add, read, change, remove, import, export; erasure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from app.accounts import service as accounts
from app.keys.deps import AdminKey, EditorKey
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.errors import BadRequest, Invalid
from app.kit.ids import IdPath
from app.kit.pagination import Page, PageParamsDep, make_page
from app.models import SubscriptionStatus
from app.newsletters.deps import NewsletterDep
from app.subscribers import service
from app.subscribers.errors import UnsupportedMediaType
from app.subscribers.exporter import export_download
from app.subscribers.importer import import_csv
from app.subscribers.schemas import (
    ImportResult,
    SubscriberAdd,
    SubscriptionRead,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["subscribers"])

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", ""})
StatusQuery = Annotated[SubscriptionStatus | None, Query()]


@router.get("/newsletters/{slug}/subscribers", response_model=Page[SubscriptionRead])
async def list_subscribers(
    session: SessionDep,
    _: EditorKey,
    newsletter: NewsletterDep,
    page: PageParamsDep,
    status: StatusQuery = None,
    q: Annotated[str | None, Query(max_length=320)] = None,
) -> Page[SubscriptionRead]:
    rows = await service.list_page(
        session, newsletter, status=status, q=q, after_id=page.after_id, limit=page.limit
    )
    return make_page(
        [SubscriptionRead.build(s, p) for s, p in rows], [s.id for s, _ in rows], page.limit
    )


@router.post(
    "/newsletters/{slug}/subscribers",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionRead,
)
async def add_subscriber(
    body: SubscriberAdd,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    _: EditorKey,
    newsletter: NewsletterDep,
) -> SubscriptionRead:
    subscription, subscriber = await service.add_by_editor(
        session, settings=settings, signer=signer, newsletter=newsletter, data=body
    )
    return SubscriptionRead.build(subscription, subscriber)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    try:
        while chunk := await upload.read(64 * 1024):
            yield chunk
    finally:
        await upload.close()


@router.post("/newsletters/{slug}/subscribers/import", response_model=ImportResult)
async def import_subscribers(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: EditorKey,
    newsletter: NewsletterDep,
) -> ImportResult:
    """The body is the CSV (`text/csv`), or a multipart upload with a `file` field.

    Streamed and written in batches of 1000 rows, each in its own transaction; a second
    import of the same file changes nothing.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    chunks: AsyncIterator[bytes]
    if media_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as exc:  # malformed multipart bodies raise several kinds
            raise BadRequest("the multipart body could not be read") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("file", "send the CSV as a file field named 'file'")
        chunks = _upload_chunks(upload)
    elif media_type in CSV_TYPES:
        chunks = request.stream()
    else:
        raise UnsupportedMediaType("send the CSV as text/csv or as multipart/form-data")
    newsletter_id = newsletter.id
    # The import writes in its own short transactions; end the request's one first, so
    # nothing it wrote (the key's last use) holds a lock while the file streams in.
    await session.commit()
    report = await import_csv(
        request.app.state.sessionmaker,
        chunks,
        newsletter_id=newsletter_id,
        consent_text=f"imported by {principal.name}",
        allow_utf8_local=settings.smtputf8,
    )
    counts = f"{report.created} created, {report.updated} updated, {report.skipped} skipped"
    detail = f"{counts}, {report.invalid_count} invalid"
    subject = f"newsletter {newsletter.slug}"
    await accounts.audit(session, principal.actor, "subscribers.import", subject, detail)
    return ImportResult.model_validate(report.as_dict())


@router.get("/newsletters/{slug}/subscribers/export")
async def export_subscribers(
    request: Request,
    _: EditorKey,
    newsletter: NewsletterDep,
    status: StatusQuery = None,
) -> StreamingResponse:
    """Every subscription as CSV, streamed page by page (keyset by id), grouped by status:
    active, pending, unsubscribed, bounced, complained."""
    return export_download(
        request.app.state.sessionmaker,
        newsletter_id=newsletter.id,
        slug=newsletter.slug,
        status=status.value if status else None,
    )


@router.get("/newsletters/{slug}/subscribers/{subscription_id}", response_model=SubscriptionRead)
async def get_subscriber(
    subscription_id: IdPath, session: SessionDep, _: EditorKey, newsletter: NewsletterDep
) -> SubscriptionRead:
    subscription, subscriber = await service.get_subscription(session, newsletter, subscription_id)
    return SubscriptionRead.build(subscription, subscriber)


@router.patch("/newsletters/{slug}/subscribers/{subscription_id}", response_model=SubscriptionRead)
async def update_subscriber(
    subscription_id: IdPath,
    body: SubscriptionUpdate,
    session: SessionDep,
    _: EditorKey,
    newsletter: NewsletterDep,
) -> SubscriptionRead:
    subscription, subscriber = await service.update_subscription(
        session, newsletter, subscription_id, body
    )
    return SubscriptionRead.build(subscription, subscriber)


@router.delete(
    "/newsletters/{slug}/subscribers/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_subscriber(
    subscription_id: IdPath, session: SessionDep, _: EditorKey, newsletter: NewsletterDep
) -> None:
    await service.delete_subscription(session, newsletter, subscription_id)


@router.delete("/subscribers/{email:path}", status_code=status.HTTP_204_NO_CONTENT)
async def erase_subscriber(
    email: Annotated[str, Path(max_length=320)],
    session: SessionDep,
    settings: SettingsDep,
    key: AdminKey,
) -> None:
    """GDPR erasure: delete the person from every newsletter, their events and mail, and
    suppress the address so it is never mailed again."""
    await service.erase(session, settings=settings, email=email)
    # The address stays in the suppression list anyway; the log says who erased it.
    await accounts.audit(session, key.actor, "subscriber.erase", email.strip())
