"""The editor's dashboard under `/admin` (SPEC section 11).

Server-rendered pages over the same services as the REST API: a rule lives in one
place. Each module serves one screen and exports `router`; `install` mounts them all and
answers a missing session with a redirect to the login page.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.admin import (
    audit,
    auth,
    editor,
    home,
    issues_list,
    keys,
    newsletters,
    password,
    report,
    schedule,
    sending,
    subscribers,
    users,
)
from app.admin.deps import LoginRequired, ViewerDep
from app.admin.web import login_url, redirect
from app.kit.errors import NotFound

ROUTERS = (
    auth,
    home,
    newsletters,
    issues_list,
    schedule,
    keys,
    users,
    audit,
    password,
    editor,
    sending,
    report,
    subscribers,
)


def install(app: FastAPI) -> None:
    for module in ROUTERS:
        app.include_router(module.router)

    # Last: any other /admin address asks for a login first, so that a stranger learns
    # nothing of which pages exist; a signed-in person gets the 404 page.
    @app.get("/admin/{rest:path}", include_in_schema=False)
    async def _unknown(rest: str, viewer: ViewerDep) -> Response:
        raise NotFound("There is no such page in the dashboard.")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request") == "true":
            # A poll or an autosave after the session ended: htmx takes the whole page
            # to the login (a redirect would be followed and the login page swapped in).
            return Response(headers={"HX-Redirect": login_url(exc.next_path)})
        return redirect(request, login_url(exc.next_path))
