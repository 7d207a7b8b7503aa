"""Public pages (no key): subscribe form and POST, confirm, unsubscribe (RFC 8058).

Every page is a Jinja2 template that works without JavaScript; every POST also answers
JSON. Bodies are parsed here rather than by FastAPI so that a form post that goes wrong
gets an HTML page back, never FastAPI's JSON error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile

from app.kit.addresses import AddressError, normalise_email
from app.kit.deps import SessionDep, SettingsDep, SignerDep, client_ip
from app.kit.links import confirm_subscription_id, unsubscribe_subscription_id
from app.kit.text import has_line_break
from app.kit.tokens import TokenError
from app.models import Newsletter, SubscriptionStatus
from app.newsletters import service as newsletters
from app.settings import Settings
from app.subscribers import ratelimit, service
from app.subscribers.service import (
    ConfirmOutcome,
    ConsentProof,
    LinkResult,
    UnsubscribeOutcome,
)

router = APIRouter(include_in_schema=True, tags=["public pages"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")

JSON_TYPE = "application/json"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_NAME = 200
# Headers for pages reached through a token: never cached, never indexed, never framed,
# and the token in the address never leaks through a Referer.
TOKEN_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    # Nobody may frame the unsubscribe button and trick a click on it.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def consent_text(newsletter: Newsletter) -> str:
    """The consent statement shown next to the button, stored as given consent."""
    return (
        f"By subscribing you agree to receive {newsletter.name} by email from "
        f"{newsletter.from_name}. You can unsubscribe at any time with the link in every email."
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _wants_json(request: Request) -> bool:
    if _media_type(request) == JSON_TYPE:
        return True
    accept = request.headers.get("accept", "").lower()
    return JSON_TYPE in accept and "text/html" not in accept


def _page(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    context.setdefault("newsletter", None)
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=headers
    )


def _message(
    request: Request,
    status_code: int,
    title: str,
    *paragraphs: str,
    newsletter: Newsletter | None = None,
    icon: str = "status-warn",
    link: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return _page(
        request,
        "message.html",
        status_code,
        headers=headers,
        newsletter=newsletter,
        title=title,
        paragraphs=paragraphs,
        icon=icon,
        link_url=link[0] if link else None,
        link_label=link[1] if link else None,
        noindex=True,
    )


def _subscribe_path(newsletter: Newsletter) -> str:
    return f"/newsletters/{newsletter.slug}/subscribe"


def _not_found(request: Request, as_json: bool) -> Response:
    if as_json:
        return JSONResponse({"detail": "no such newsletter"}, status_code=404)
    return _message(
        request,
        404,
        "Newsletter not found",
        "There is no newsletter at this address. Check the link you followed.",
    )


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
    return _message(
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
    return _page(
        request,
        "subscribe.html",
        status_code,
        newsletter=newsletter,
        action=_subscribe_path(newsletter),
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
    return _page(
        request,
        "subscribed.html",
        202,
        newsletter=newsletter,
        pending=pending,
        confirm_days=max(1, settings.confirm_token_max_age_seconds // 86400),
        noindex=True,
    )


@router.get("/newsletters/{slug}/subscribe", response_class=HTMLResponse)
async def subscribe_form(request: Request, slug: str, session: SessionDep) -> Response:
    newsletter = await newsletters.find(session, slug)
    if newsletter is None:
        return _not_found(request, False)
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


def _email_message(value: str, exc: AddressError) -> str:
    if not value.strip():
        return "Enter your email address."
    if "not a valid email address" in str(exc):
        return "Enter a valid email address, like name@example.com."
    return f"This email address {exc}."


def _text_field(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadBody(field, "must be a string")
    return value


@router.post("/newsletters/{slug}/subscribe")
async def subscribe(
    request: Request,
    slug: str,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
) -> Response:
    media_type = _media_type(request)
    as_json = _wants_json(request)
    if media_type != JSON_TYPE and media_type not in FORM_TYPES:
        return JSONResponse(
            {
                "detail": "send the form as application/x-www-form-urlencoded or "
                "multipart/form-data, or JSON as application/json"
            },
            status_code=415,
        )
    values = {"email": "", "name": ""}
    errors: dict[str, str] = {}
    try:
        data = await _read_fields(request, media_type)
        values = {"email": _text_field(data, "email"), "name": _text_field(data, "name")}
        honeypot = _text_field(data, "website")
    except _BadBody as exc:
        errors[exc.field or "body"] = exc.message
        honeypot = ""
    # A bot filled the field people never see: it is answered as if it worked.
    is_bot = bool(honeypot.strip())
    email = ""
    if not errors:
        try:
            email = normalise_email(values["email"], allow_utf8_local=settings.smtputf8)
        except AddressError as exc:
            errors["email"] = _email_message(values["email"], exc)
        name = values["name"]
        if has_line_break(name):
            errors["name"] = "The name must be on one line, without control characters."
        elif len(name.strip()) > MAX_NAME:
            errors["name"] = f"The name must be at most {MAX_NAME} characters."

    # Every attempt counts against the client's limit, valid or not, so the form cannot be
    # used to probe addresses or to flood mailboxes; a valid address also counts against
    # its own limit, keyed on the lower-cased address (most mailboxes ignore case before
    # the @, so case variants must not each get their own allowance). Counted before the
    # request's session runs a query: see ratelimit.hit_alone.
    ip = client_ip(request, settings)
    hits = [(ratelimit.counter_key("subscribe-ip", ip, settings.secret), settings.subscribe_rate)]
    if email and not errors and not is_bot:
        hits.append(
            (
                ratelimit.counter_key("subscribe-address", email.lower(), settings.secret),
                settings.subscribe_address_rate,
            )
        )
    retry = await ratelimit.hit_alone(request.app.state.sessionmaker, hits)

    newsletter = await newsletters.find(session, slug)
    if newsletter is None:
        return _not_found(request, as_json)
    if retry is not None:
        return _too_many(request, as_json, retry, newsletter)
    if is_bot:
        return _success(request, as_json, newsletter, settings)  # and keep nothing
    if errors:
        if as_json:
            detail = [
                {
                    "loc": ["body"] if field == "body" else ["body", field],
                    "msg": message,
                    "type": "value_error",
                }
                for field, message in errors.items()
            ]
            return JSONResponse({"detail": detail}, status_code=422)
        return _form_page(request, newsletter, status_code=400, values=values, errors=errors)

    page = request.headers.get("referer") or f"{settings.base_url}{_subscribe_path(newsletter)}"
    proof = ConsentProof(
        source="form",
        consent_text=consent_text(newsletter),
        page=page[:2000],
        ip=ip,
        user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
    )
    await service.subscribe_public(
        session,
        settings=settings,
        signer=signer,
        newsletter=newsletter,
        email=email,
        name=values["name"].strip(),
        proof=proof,
    )
    return _success(request, as_json, newsletter, settings)


def _bad_link(request: Request, what: str, expired: bool = False) -> HTMLResponse:
    if expired:
        return _message(
            request,
            400,
            "This link has expired",
            f"This {what} link is too old to use. Subscribe again to get a new one.",
            headers=TOKEN_PAGE_HEADERS,
        )
    return _message(
        request,
        400,
        "This link is not valid",
        f"This {what} link is incomplete or was changed. Copy the whole link from the "
        "email and try again.",
        headers=TOKEN_PAGE_HEADERS,
    )


def _confirm_id(
    request: Request, token: str, settings: Settings, signer: Any, as_json: bool
) -> int | Response:
    """The subscription a confirm link names, or the 400 answer for a bad or old link."""
    try:
        return confirm_subscription_id(signer, token, settings.confirm_token_max_age_seconds)
    except TokenError as exc:
        expired = "expired" in str(exc)
        if as_json:
            detail = (
                "this confirmation link has expired" if expired else "invalid confirmation link"
            )
            return JSONResponse({"detail": detail}, status_code=400, headers=TOKEN_PAGE_HEADERS)
        return _bad_link(request, "confirmation", expired=expired)


def _confirm_answer(request: Request, result: LinkResult, as_json: bool) -> Response:
    """The answer for every outcome but a pending subscription, to the GET and the POST."""
    newsletter = result.newsletter
    if newsletter is None:
        if as_json:
            return JSONResponse(
                {"detail": "the subscription this link confirms no longer exists"},
                status_code=400,
                headers=TOKEN_PAGE_HEADERS,
            )
        return _message(
            request,
            400,
            "This link is no longer valid",
            "The subscription it confirms does not exist any more.",
            headers=TOKEN_PAGE_HEADERS,
        )
    if result.outcome in (ConfirmOutcome.confirmed, ConfirmOutcome.already):
        if as_json:
            return JSONResponse({"status": "active"}, headers=TOKEN_PAGE_HEADERS)
        return _message(
            request,
            200,
            "You're subscribed",
            f"Thank you for confirming. {newsletter.name} will arrive at {result.email} "
            "with the next issue.",
            "Every email has a link to unsubscribe with one click.",
            newsletter=newsletter,
            icon="status-ok",
            headers=TOKEN_PAGE_HEADERS,
        )
    if result.outcome == ConfirmOutcome.suppressed:
        if as_json:
            return JSONResponse(
                {"detail": "this address is on the do-not-mail list and cannot be confirmed"},
                status_code=409,
                headers=TOKEN_PAGE_HEADERS,
            )
        return _message(
            request,
            409,
            "We can't send to this address",
            f"{result.email} is on our do-not-mail list, so this subscription cannot be "
            "confirmed. This happens after an erasure request, a spam report or mail that "
            "could not be delivered.",
            newsletter=newsletter,
            headers=TOKEN_PAGE_HEADERS,
        )
    if as_json:
        return JSONResponse(
            {"detail": "this subscription has ended; subscribe again to receive it"},
            status_code=409,
            headers=TOKEN_PAGE_HEADERS,
        )
    return _message(
        request,
        409,
        "This link can no longer be used",
        f"This subscription to {newsletter.name} has ended, and an old confirmation link "
        "cannot restart it. To receive it again, subscribe once more.",
        newsletter=newsletter,
        link=(_subscribe_path(newsletter), "Subscribe again"),
        headers=TOKEN_PAGE_HEADERS,
    )


@router.get("/confirm/{token}", response_class=HTMLResponse)
async def confirm_page(
    request: Request, token: str, session: SessionDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    """The page with the Confirm button. A GET confirms nothing: mail scanners open links."""
    subscription_id = _confirm_id(request, token, settings, signer, as_json=False)
    if isinstance(subscription_id, Response):
        return subscription_id
    result = await service.confirm_state(session, subscription_id)
    if result.outcome != ConfirmOutcome.pending or result.newsletter is None:
        return _confirm_answer(request, result, as_json=False)
    return _page(
        request,
        "confirm.html",
        200,
        headers=TOKEN_PAGE_HEADERS,
        newsletter=result.newsletter,
        email=result.email,
        action=request.url.path,
        noindex=True,
    )


@router.post("/confirm/{token}")
async def confirm(
    request: Request, token: str, session: SessionDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    """Confirm a pending subscription: the confirm page's button, or a JSON POST.

    The body carries nothing needed (the token in the address is the proof), so any
    form, JSON or empty body is accepted. Records the ip and user agent of this request,
    the client that pressed the button.
    """
    as_json = _wants_json(request)
    subscription_id = _confirm_id(request, token, settings, signer, as_json)
    if isinstance(subscription_id, Response):
        return subscription_id
    result = await service.confirm(
        session,
        subscription_id,
        ip=client_ip(request, settings),
        user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
    )
    return _confirm_answer(request, result, as_json)


def _unsubscribe_id(signer: Any, token: str) -> int | None:
    try:
        return unsubscribe_subscription_id(signer, token)
    except TokenError:
        return None


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_page(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> Response:
    """The page with the button. A GET never unsubscribes: mail scanners follow links."""
    subscription_id = _unsubscribe_id(signer, token)
    if subscription_id is None:
        return _bad_link(request, "unsubscribe")
    found = await service.subscription_for_link(session, subscription_id)
    if found is None:
        return _message(
            request,
            200,
            "You're not subscribed",
            "This address is no longer on the list: you will not receive any more email.",
            icon="status-ok",
            headers=TOKEN_PAGE_HEADERS,
        )
    subscription, subscriber, newsletter = found
    if subscription.status in (
        SubscriptionStatus.unsubscribed.value,
        SubscriptionStatus.bounced.value,
        SubscriptionStatus.complained.value,
    ):
        return _message(
            request,
            200,
            "You're unsubscribed",
            f"You will not receive {newsletter.name} at {subscriber.email} any more.",
            newsletter=newsletter,
            icon="status-ok",
            link=(_subscribe_path(newsletter), "Subscribe again"),
            headers=TOKEN_PAGE_HEADERS,
        )
    return _page(
        request,
        "unsubscribe.html",
        200,
        headers=TOKEN_PAGE_HEADERS,
        newsletter=newsletter,
        email=subscriber.email,
        action=request.url.path,
        noindex=True,
    )


@router.post("/unsubscribe/{token}")
async def unsubscribe(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> Response:
    """Unsubscribe at once: the page's button, or a mail client's RFC 8058 one-click POST.

    Needs nothing but the token in the address: no cookie, no particular body (RFC 8058
    sends `List-Unsubscribe=One-Click` form-encoded). Always 200 with a page or JSON on
    success, never a redirect.
    """
    as_json = _wants_json(request)
    body = await request.body()
    subscription_id = _unsubscribe_id(signer, token)
    if subscription_id is None:
        if as_json:
            return JSONResponse({"detail": "invalid unsubscribe link"}, status_code=400)
        return _bad_link(request, "unsubscribe")
    detail = "one-click" if b"List-Unsubscribe=One-Click" in body else "link"
    result = await service.unsubscribe(session, subscription_id, detail=detail)
    if as_json:
        return JSONResponse({"status": "unsubscribed"}, headers=TOKEN_PAGE_HEADERS)
    newsletter = result.newsletter
    if newsletter is None or result.outcome == UnsubscribeOutcome.gone:
        return _message(
            request,
            200,
            "You're unsubscribed",
            "This address is not on the list: you will not receive any more email.",
            icon="status-ok",
            headers=TOKEN_PAGE_HEADERS,
        )
    return _message(
        request,
        200,
        "You're unsubscribed",
        f"You will not receive {newsletter.name} at {result.email} any more. Sorry to see you go.",
        "Unsubscribed by mistake? You can subscribe again at any time.",
        newsletter=newsletter,
        icon="status-ok",
        link=(_subscribe_path(newsletter), "Subscribe again"),
        headers=TOKEN_PAGE_HEADERS,
    )
