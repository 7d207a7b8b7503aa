"""The unsubscribe screen: the page with the button (GET) and the RFC 8058 one-click POST."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.kit.deps import SessionDep, SignerDep
from app.kit.links import unsubscribe_subscription_id
from app.kit.tokens import TokenError
from app.models import SubscriptionStatus
from app.subscribers import service
from app.subscribers.pages.common import TOKEN_PAGE_HEADERS, bad_link, message, page, wants_json
from app.subscribers.service import UnsubscribeOutcome
from app.subscribers.signup import form_path

router = APIRouter()

_ENDED = (
    SubscriptionStatus.unsubscribed.value,
    SubscriptionStatus.bounced.value,
    SubscriptionStatus.complained.value,
)


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
        return bad_link(request, "unsubscribe")
    found = await service.subscription_for_link(session, subscription_id)
    if found is None:
        return message(
            request,
            200,
            "You're not subscribed",
            "This address is no longer on the list: you will not receive any more email.",
            icon="status-ok",
            headers=TOKEN_PAGE_HEADERS,
        )
    subscription, subscriber, newsletter = found
    if subscription.status in _ENDED:
        return message(
            request,
            200,
            "You're unsubscribed",
            f"You will not receive {newsletter.name} at {subscriber.email} any more.",
            newsletter=newsletter,
            icon="status-ok",
            link=(form_path(newsletter), "Subscribe again"),
            headers=TOKEN_PAGE_HEADERS,
        )
    return page(
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
    as_json = wants_json(request)
    body = await request.body()
    subscription_id = _unsubscribe_id(signer, token)
    if subscription_id is None:
        if as_json:
            return JSONResponse({"detail": "invalid unsubscribe link"}, status_code=400)
        return bad_link(request, "unsubscribe")
    detail = "one-click" if b"List-Unsubscribe=One-Click" in body else "link"
    result = await service.unsubscribe(session, subscription_id, detail=detail)
    if as_json:
        return JSONResponse({"status": "unsubscribed"}, headers=TOKEN_PAGE_HEADERS)
    newsletter = result.newsletter
    if newsletter is None or result.outcome == UnsubscribeOutcome.gone:
        return message(
            request,
            200,
            "You're unsubscribed",
            "This address is not on the list: you will not receive any more email.",
            icon="status-ok",
            headers=TOKEN_PAGE_HEADERS,
        )
    return message(
        request,
        200,
        "You're unsubscribed",
        f"You will not receive {newsletter.name} at {result.email} any more. Sorry to see you go.",
        "Unsubscribed by mistake? You can subscribe again at any time.",
        newsletter=newsletter,
        icon="status-ok",
        link=(form_path(newsletter), "Subscribe again"),
        headers=TOKEN_PAGE_HEADERS,
    )
