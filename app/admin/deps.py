"""Who is asking: the session behind the cookie, the role, and the CSRF rules.

- `ViewerDep`: a signed-in person. A GET without one is sent to the login page (303,
  with `next`); any other request without one gets the same redirect and changes nothing.
- `AdminDep`: the same, for an admin only; an editor gets a 403 page.
- `FormViewerDep` / `FormAdminDep`: for every state-changing request. Besides the session,
  the request must come from this site (an `Origin` or `Referer` of another host: 403)
  and carry the session's CSRF token, in the form field `csrf_token` or the
  `X-CSRF-Token` header (htmx sends it from the page's `hx-headers`).
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.kit.deps import SessionDep, SettingsDep, client_ip
from app.kit.errors import BroadsheetError, Forbidden, TooManyRequests
from app.settings import Settings
from app.throttle import service as throttle

SESSION_COOKIE = "bs_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No valid session: answered with a 303 to the login page (see `app.admin.install`)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_same_origin(request: Request, settings: Settings) -> bool:
    """Whether the request's Origin (else Referer) is this site; absent counts as same.

    This site is BASE_URL's origin, or the origin the request was addressed to (a
    dashboard reached on its internal address).
    """
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True  # not a browser form (browsers send Origin on every POST)
    origin = _origin(claimed)
    own = {_origin(settings.base_url)}
    host = request.headers.get("host")
    if host:
        own.add(f"{request.url.scheme}://{host}".lower())
    return origin is not None and origin in own


def require_same_origin(request: Request, settings: Settings) -> None:
    """A form sent from another site: 403."""
    if not is_same_origin(request, settings):
        raise Forbidden("This form was sent from another site, so it was refused.")


async def throttle_attempt(request: Request, settings: Settings, scope: str, email: str) -> None:
    """Count an attempt (a login, a reset request) against the client's and the address's
    limits; over either, 429. Call it before the request's session has run a query (see
    `throttle.hit_alone`)."""
    hits = [
        (
            throttle.counter_key(f"{scope}-ip", client_ip(request, settings), settings.secret),
            settings.login_rate,
        ),
        (
            throttle.counter_key(f"{scope}-address", email.strip().lower(), settings.secret),
            settings.login_address_rate,
        ),
    ]
    retry = await throttle.hit_alone(request.app.state.sessionmaker, hits)
    if retry is not None:
        raise TooManyRequests(retry)


def _next_path(request: Request) -> str:
    """Where to come back to after logging in: this page, or for a form (or an htmx
    request for a piece of a page) the page it was on."""
    if request.headers.get("hx-request") == "true":
        page = urlsplit(request.headers.get("hx-current-url", ""))
        if page.path.startswith("/admin"):
            return page.path + (f"?{page.query}" if page.query else "")
    if request.method in ("GET", "HEAD"):
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    came_from = urlsplit(request.headers.get("referer", ""))
    return came_from.path if came_from.path.startswith("/admin") else "/admin"


async def get_viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE, "")
    idle = timedelta(hours=settings.session_idle_hours)
    viewer = await accounts.resolve_session(session, token, idle=idle) if token else None
    if viewer is None:
        raise LoginRequired(_next_path(request))
    return viewer


async def get_admin(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    if not viewer.is_admin:
        raise Forbidden("Only an admin can open this page.")
    return viewer


async def check_form(request: Request, settings: Settings, viewer: Viewer) -> Viewer:
    require_same_origin(request, settings)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else ""
    if not hmac.compare_digest(presented.encode(), viewer.csrf_token.encode()):
        raise CsrfRefused()
    return viewer


class CsrfRefused(BroadsheetError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            "The form's security token is missing or out of date. Go back, reload the page "
            "and try again."
        )


async def get_form_viewer(
    request: Request, settings: SettingsDep, viewer: Annotated[Viewer, Depends(get_viewer)]
) -> Viewer:
    return await check_form(request, settings, viewer)


async def get_form_admin(
    request: Request, settings: SettingsDep, viewer: Annotated[Viewer, Depends(get_admin)]
) -> Viewer:
    return await check_form(request, settings, viewer)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
AdminDep = Annotated[Viewer, Depends(get_admin)]
FormViewerDep = Annotated[Viewer, Depends(get_form_viewer)]
FormAdminDep = Annotated[Viewer, Depends(get_form_admin)]
