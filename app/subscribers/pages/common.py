"""What every public page shares: templates, JSON or HTML, the message page, link headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from app.models import Newsletter

templates = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")

JSON_TYPE = "application/json"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
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


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def wants_json(request: Request) -> bool:
    if media_type(request) == JSON_TYPE:
        return True
    accept = request.headers.get("accept", "").lower()
    return JSON_TYPE in accept and "text/html" not in accept


def page(
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


def message(
    request: Request,
    status_code: int,
    title: str,
    *paragraphs: str,
    newsletter: Newsletter | None = None,
    icon: str = "status-warn",
    link: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(
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


def not_found(request: Request, as_json: bool) -> Response:
    if as_json:
        return JSONResponse({"detail": "no such newsletter"}, status_code=404)
    return message(
        request,
        404,
        "Newsletter not found",
        "There is no newsletter at this address. Check the link you followed.",
    )


def bad_link(request: Request, what: str, expired: bool = False) -> HTMLResponse:
    if expired:
        return message(
            request,
            400,
            "This link has expired",
            f"This {what} link is too old to use. Subscribe again to get a new one.",
            headers=TOKEN_PAGE_HEADERS,
        )
    return message(
        request,
        400,
        "This link is not valid",
        f"This {what} link is incomplete or was changed. Copy the whole link from the "
        "email and try again.",
        headers=TOKEN_PAGE_HEADERS,
    )
