"""The confirm screen: the page with the Confirm button (GET) and the button's POST."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.kit.deps import SessionDep, SettingsDep, SignerDep, client_ip
from app.kit.links import confirm_subscription_id
from app.kit.tokens import TokenError
from app.settings import Settings
from app.subscribers import service
from app.subscribers.pages.common import TOKEN_PAGE_HEADERS, bad_link, message, page, wants_json
from app.subscribers.service import ConfirmOutcome, LinkResult
from app.subscribers.signup import form_path

router = APIRouter()


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
        return bad_link(request, "confirmation", expired=expired)


def _confirm_json(result: LinkResult) -> Response:
    """The JSON answer for every outcome but a pending subscription."""
    if result.newsletter is None:
        detail, status_code = "the subscription this link confirms no longer exists", 400
    elif result.outcome in (ConfirmOutcome.confirmed, ConfirmOutcome.already):
        return JSONResponse({"status": "active"}, headers=TOKEN_PAGE_HEADERS)
    elif result.outcome == ConfirmOutcome.suppressed:
        detail = "this address is on the do-not-mail list and cannot be confirmed"
        status_code = 409
    else:
        detail = "this subscription has ended; subscribe again to receive it"
        status_code = 409
    return JSONResponse({"detail": detail}, status_code=status_code, headers=TOKEN_PAGE_HEADERS)


def _confirm_message(request: Request, result: LinkResult) -> Response:
    """The page for every outcome but a pending subscription."""
    newsletter = result.newsletter
    if newsletter is None:
        return message(
            request,
            400,
            "This link is no longer valid",
            "The subscription it confirms does not exist any more.",
            headers=TOKEN_PAGE_HEADERS,
        )
    if result.outcome in (ConfirmOutcome.confirmed, ConfirmOutcome.already):
        return message(
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
        return message(
            request,
            409,
            "We can't send to this address",
            f"{result.email} is on our do-not-mail list, so this subscription cannot be "
            "confirmed. This happens after an erasure request, a spam report or mail that "
            "could not be delivered.",
            newsletter=newsletter,
            headers=TOKEN_PAGE_HEADERS,
        )
    return message(
        request,
        409,
        "This link can no longer be used",
        f"This subscription to {newsletter.name} has ended, and an old confirmation link "
        "cannot restart it. To receive it again, subscribe once more.",
        newsletter=newsletter,
        link=(form_path(newsletter), "Subscribe again"),
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
        return _confirm_message(request, result)
    return page(
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
    as_json = wants_json(request)
    subscription_id = _confirm_id(request, token, settings, signer, as_json)
    if isinstance(subscription_id, Response):
        return subscription_id
    result = await service.confirm(
        session,
        subscription_id,
        ip=client_ip(request, settings),
        user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
    )
    return _confirm_json(result) if as_json else _confirm_message(request, result)
