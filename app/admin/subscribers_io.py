"""Adding one subscriber, importing a CSV and exporting one, in the dashboard.

The same service calls as the REST API: `POST .../subscribers` (add_by_editor), the
streamed importer of `POST .../subscribers/import` with its per-line report, and the
exporter of `GET .../subscribers/export`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.admin.deps import FormViewerDep, ViewerDep
from app.admin.web import redirect, render
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.errors import BroadsheetError, Invalid
from app.models import Newsletter, SubscriptionStatus
from app.newsletters.deps import NewsletterDep
from app.subscribers import service as subscribers
from app.subscribers.schemas import SubscriberAdd

router = APIRouter(include_in_schema=False)

UPLOAD_CHUNK = 64 * 1024
TEXT_FIELDS = ("email", "name", "consent")


def _base(newsletter: Newsletter) -> str:
    return f"/admin/newsletters/{newsletter.slug}/subscribers"


def _add_form(request: Request, viewer: Viewer, newsletter: Newsletter, **extra: Any) -> Response:
    form = extra.pop("form", None) or {
        "email": "",
        "name": "",
        "consent": "",
        "double_opt_in": newsletter.double_opt_in,
    }
    status = extra.pop("status_code", 200)
    context = {"newsletter": newsletter, "tab": "subscribers", "form": form, **extra}
    return render(request, viewer, "admin/subscriber_new.html", context, status_code=status)


@router.get("/admin/newsletters/{slug}/subscribers/new")
async def add_page(request: Request, viewer: ViewerDep, newsletter: NewsletterDep) -> Response:
    return _add_form(request, viewer, newsletter)


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "form"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field.capitalize()}: {message}."


@router.post("/admin/newsletters/{slug}/subscribers/new")
async def add(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    viewer: FormViewerDep,
    newsletter: NewsletterDep,
) -> Response:
    raw = await request.form()
    form: dict[str, Any] = {key: str(raw.get(key, ""))[:3000] for key in TEXT_FIELDS}
    form["double_opt_in"] = raw.get("double_opt_in") is not None
    consent = form["consent"].strip() or f"added in the dashboard by {viewer.email}"
    try:
        data = SubscriberAdd(
            email=form["email"].strip(),
            name=form["name"].strip(),
            consent=consent,
            double_opt_in=bool(form["double_opt_in"]),
        )
        subscription, subscriber = await subscribers.add_by_editor(
            session, settings=settings, signer=signer, newsletter=newsletter, data=data
        )
    except ValidationError as exc:
        return _add_form(
            request, viewer, newsletter, form=form, error=_problem(exc), status_code=422
        )
    except BroadsheetError as exc:  # Invalid address (422), suppressed or subscribed (409)
        error = str(exc.detail[0]["msg"]) if isinstance(exc.detail, list) else str(exc.detail)
        return _add_form(
            request, viewer, newsletter, form=form, error=error, status_code=exc.status_code
        )
    await accounts.audit(
        session,
        viewer.actor,
        "subscriber.add",
        f"subscription {subscription.id}",
        f"newsletter {newsletter.slug}, {subscription.status}",
    )
    said = (
        "a confirmation email is on its way"
        if subscription.status == SubscriptionStatus.pending.value
        else "active now"
    )
    return redirect(
        request, f"{_base(newsletter)}/{subscription.id}", f"Added {subscriber.email}: {said}."
    )


def _import_page(
    request: Request, viewer: Viewer, newsletter: Newsletter, **extra: Any
) -> Response:
    status = extra.pop("status_code", 200)
    context = {"newsletter": newsletter, "tab": "subscribers", "report": None, **extra}
    return render(request, viewer, "admin/subscribers_import.html", context, status_code=status)


@router.get("/admin/newsletters/{slug}/subscribers/import")
async def import_page(request: Request, viewer: ViewerDep, newsletter: NewsletterDep) -> Response:
    return _import_page(request, viewer, newsletter)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    try:
        while chunk := await upload.read(UPLOAD_CHUNK):
            yield chunk
    finally:
        await upload.close()


@router.post("/admin/newsletters/{slug}/subscribers/import")
async def import_file(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: FormViewerDep,
    newsletter: NewsletterDep,
) -> Response:
    """The report is this POST's answer (a long list has no place in a flash message);
    importing the same file again changes nothing, so a reload does no harm."""
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # malformed multipart bodies raise several kinds
        form = None
    upload = form.get("file") if form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = "Choose a CSV file to import."
        return _import_page(request, viewer, newsletter, error=error, status_code=400)
    newsletter_id, slug = newsletter.id, newsletter.slug
    # As the API does: the import writes in its own short transactions, so the request's
    # own one ends first and holds no lock while the file is read.
    await session.commit()
    try:
        report = await subscribers.import_csv(
            request.app.state.sessionmaker,
            _chunks(upload),
            newsletter_id=newsletter_id,
            consent_text=f"imported in the dashboard by {viewer.email}",
            allow_utf8_local=settings.smtputf8,
        )
    except Invalid as exc:  # the file as a whole: no header, no email column, not UTF-8
        error = f"Nothing was imported: {exc.detail[0]['msg']}."
        return _import_page(request, viewer, newsletter, error=error, status_code=422)
    summary = report.as_dict()
    await accounts.audit(
        session,
        viewer.actor,
        "subscriber.import",
        f"newsletter {slug}",
        f"{upload.filename}: created {report.created}, updated {report.updated}, "
        f"skipped {report.skipped}, invalid {report.invalid_count}",
    )
    return _import_page(request, viewer, newsletter, report=summary, filename=upload.filename)


@router.get("/admin/newsletters/{slug}/subscribers/export")
async def export(
    request: Request,
    viewer: ViewerDep,
    newsletter: NewsletterDep,
    status: Annotated[SubscriptionStatus | None, Query()] = None,
) -> StreamingResponse:
    """The REST API's export, streamed: every subscription, or those of one status."""
    return subscribers.export_download(
        request.app.state.sessionmaker,
        newsletter_id=newsletter.id,
        slug=newsletter.slug,
        status=status.value if status else None,
    )
