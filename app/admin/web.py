"""What every dashboard page shares: the template environment, flash messages, redirects.

Pages render from `app/templates/admin/` with the site's templates (the same visual
language as the public pages). A flash message rides on a signed cookie from the
redirect after a form to the page it leads to, and is shown there once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.accounts.service import Viewer
from app.kit.errors import BroadsheetError
from app.kit.tokens import Signer, TokenError
from app.pages.templates import templates

FLASH_COOKIE = "bs_flash"
FLASH_PURPOSE = "flash"
HTMX_VERSION = "2.0.11"


def problem(exc: BroadsheetError) -> str:
    """A service error as one sentence for a page."""
    text = str(getattr(exc, "message", None) or exc.detail)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def password_problem(password: str, again: str) -> str | None:
    """What is wrong with a form's new password and its repetition, if anything."""
    if not password:
        return "Enter a password, twice."
    if password != again:
        return "The two passwords differ: type the same one twice."
    return None


def number(value: int | float | None) -> str:
    """12345 -> "12,345"; None -> "–"."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def localtime(when: datetime | None, tz: str | None = None, with_zone: bool = True) -> str:
    """A moment in a newsletter's time zone: "Mon 7 Dec 2026, 09:00 CET"."""
    if when is None:
        return "–"
    local = when.astimezone(zone(tz))
    text = f"{local:%a} {local.day} {local:%b %Y, %H:%M}"
    return f"{text} {local.tzname()}" if with_zone else text


def percent(part: int | None, whole: int | None) -> str:
    if not whole:
        return "–"
    return f"{100 * (part or 0) / whole:.1f}%"


templates.env.filters["number"] = number
templates.env.filters["localtime"] = localtime
templates.env.globals["percent"] = percent
templates.env.globals["htmx_src"] = f"/static/vendor/htmx-{HTMX_VERSION}.min.js"


def _signer(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


def set_flash(request: Request, response: Response, message: str, kind: str = "ok") -> None:
    encoded = base64.urlsafe_b64encode(f"{kind}:{message}".encode()).decode().rstrip("=")
    response.set_cookie(
        FLASH_COOKIE,
        _signer(request).sign(FLASH_PURPOSE, encoded),
        max_age=120,
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
    )


def read_flash(request: Request) -> tuple[str, str] | None:
    cookie = request.cookies.get(FLASH_COOKIE)
    if not cookie:
        return None
    try:
        (encoded,) = _signer(request).unsign(FLASH_PURPOSE, cookie)
        kind, _, message = (
            base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode().partition(":")
        )
    except (TokenError, ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return (kind if kind in ("ok", "error") else "ok", message)


def redirect(
    request: Request, url: str, flash: str | None = None, *, kind: str = "ok"
) -> RedirectResponse:
    """303 to `url` after a form, with a message for the page it leads to."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_flash(request, response, flash, kind)
    return response


def login_url(next_path: str) -> str:
    return "/admin/login?next=" + quote(next_path, safe="/")


def render(
    request: Request,
    viewer: Viewer | None,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A dashboard page: the template with the viewer, CSRF token and flash message."""
    flash = read_flash(request)
    page: dict[str, Any] = {
        "viewer": viewer,
        "csrf_token": viewer.csrf_token if viewer else "",
        "flash": flash,
        "noindex": True,
        "path": request.url.path,
    }
    page.update(context or {})
    response = templates.TemplateResponse(
        request, template, page, status_code=status_code, headers=dict(headers or {})
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/admin")
    return response
