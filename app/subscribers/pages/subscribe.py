"""The subscribe screen: the form (GET) and its POST, as a form or as JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from app.kit.deps import SessionDep, SettingsDep, SignerDep, client_ip
from app.models import Newsletter, SubscriptionStatus
from app.newsletters import service as newsletters
from app.settings import Settings
from app.subscribers import signup
from app.subscribers.consent import consent_text
from app.subscribers.pages.common import (
    FORM_TYPES,
    JSON_TYPE,
    media_type,
    message,
    not_found,
    page,
    wants_json,
)
from app.subscribers.signup import SubscribeForm, SubscribeOutcome, SubscribeResult, form_path

router = APIRouter()


def _too_many(
    request: Request, as_json: bool, retry_after: int, newsletter: Newsletter
) -> Response:
    headers = {"Retry-After": str(retry_after)}
    if as_json:
        return JSONResponse(
            {"detail": "too many requests, try again later"}, status_code=429, headers=headers
        )
    minutes = max(1, round(retry_after / 60))
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}" if retry_after >= 60 else "a minute"
    return message(
        request,
        429,
        "Too many attempts",
        f"We received a lot of sign-ups from here in a short time. Please wait {wait} "
        "and try again.",
        newsletter=newsletter,
        headers=headers,
    )


def _form_page(
    request: Request,
    newsletter: Newsletter,
    *,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(
        request,
        "subscribe.html",
        status_code,
        newsletter=newsletter,
        action=form_path(newsletter),
        consent_text=consent_text(newsletter),
        values=values or {"email": "", "name": ""},
        errors=errors or {},
    )


def _success(
    request: Request, as_json: bool, newsletter: Newsletter, settings: Settings
) -> Response:
    """The one answer to every accepted subscribe request, whoever the address belongs to."""
    pending = newsletter.double_opt_in
    status = SubscriptionStatus.pending if pending else SubscriptionStatus.active
    if as_json:
        return JSONResponse({"status": status.value}, status_code=202)
    return page(
        request,
        "subscribed.html",
        202,
        newsletter=newsletter,
        pending=pending,
        confirm_days=max(1, settings.confirm_token_max_age_seconds // 86400),
        noindex=True,
    )


def _invalid(
    request: Request,
    as_json: bool,
    newsletter: Newsletter,
    form: SubscribeForm,
    errors: dict[str, str],
) -> Response:
    if as_json:
        detail = [
            {
                "loc": ["body"] if field == "body" else ["body", field],
                "msg": text,
                "type": "value_error",
            }
            for field, text in errors.items()
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    values = {"email": form.email, "name": form.name}
    return _form_page(request, newsletter, status_code=400, values=values, errors=errors)


@router.get("/newsletters/{slug}/subscribe", response_class=HTMLResponse)
async def subscribe_form(request: Request, slug: str, session: SessionDep) -> Response:
    newsletter = await newsletters.find(session, slug)
    if newsletter is None:
        return not_found(request, False)
    return _form_page(request, newsletter)


class _BadBody(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def _read_fields(request: Request, media_type: str) -> dict[str, Any]:
    if media_type == JSON_TYPE:
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise _BadBody(None, "the body is not valid JSON") from None
        except RecursionError:
            raise _BadBody(None, "the JSON body is nested too deeply") from None
        if not isinstance(data, dict):
            raise _BadBody(None, "the body must be a JSON object")
        return data
    try:
        form = await request.form(max_files=0, max_fields=20, max_part_size=64 * 1024)
    except Exception:  # malformed form bodies raise several different exceptions
        raise _BadBody(None, "the form data could not be read") from None
    return {key: value for key, value in form.items() if not isinstance(value, UploadFile)}


def _text_field(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadBody(field, "must be a string")
    return value


async def _read_form(request: Request, settings: Settings, media_type: str) -> SubscribeForm:
    """The subscribe fields of the body; a body that cannot be read is named in `errors`."""
    values = {"email": "", "name": ""}
    errors: dict[str, str] = {}
    try:
        data = await _read_fields(request, media_type)
        values = {"email": _text_field(data, "email"), "name": _text_field(data, "name")}
        honeypot = _text_field(data, "website")
    except _BadBody as exc:
        errors[exc.field or "body"] = exc.message
        honeypot = ""
    return SubscribeForm(
        email=values["email"],
        name=values["name"],
        website=honeypot,
        ip=client_ip(request, settings),
        referer=request.headers.get("referer"),
        user_agent=request.headers.get("user-agent"),
        errors=errors,
    )


def _answer(
    request: Request,
    as_json: bool,
    form: SubscribeForm,
    result: SubscribeResult,
    settings: Settings,
) -> Response:
    newsletter = result.newsletter
    if newsletter is None:
        return not_found(request, as_json)
    if result.outcome is SubscribeOutcome.too_many:
        return _too_many(request, as_json, result.retry_after, newsletter)
    if result.outcome is SubscribeOutcome.invalid:
        return _invalid(request, as_json, newsletter, form, result.errors)
    return _success(request, as_json, newsletter, settings)


@router.post("/newsletters/{slug}/subscribe")
async def subscribe(
    request: Request,
    slug: str,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
) -> Response:
    body_type = media_type(request)
    if body_type != JSON_TYPE and body_type not in FORM_TYPES:
        return JSONResponse(
            {
                "detail": "send the form as application/x-www-form-urlencoded or "
                "multipart/form-data, or JSON as application/json"
            },
            status_code=415,
        )
    form = await _read_form(request, settings, body_type)
    result = await signup.subscribe(
        session,
        request.app.state.sessionmaker,
        settings=settings,
        signer=signer,
        slug=slug,
        form=form,
    )
    return _answer(request, wants_json(request), form, result, settings)
