"""Logging in and out: `/admin/login` (fields `email`, `password`) and `/admin/logout`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.accounts import service as accounts
from app.admin.deps import SESSION_COOKIE, FormViewerDep, require_same_origin, throttle_attempt
from app.admin.web import redirect, render
from app.kit.deps import SessionDep, SettingsDep, client_ip

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None) -> str:
    """`next` only ever leads to a page of this site: a path, never `//host` or a URL."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/admin"
    if any(ch in value for ch in "\r\n\t\\") or len(value) > 2000:
        return "/admin"
    return value


def _login_page(
    request: Request,
    next_path: str,
    *,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        None,
        "admin/login.html",
        {"next": next_path, "email": email, "error": error},
        status_code=status,
    )


@router.get("/admin/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, safe_next(next))


@router.post("/admin/login")
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/admin",
) -> Response:
    require_same_origin(request, settings)
    next_path = safe_next(next)
    if not email.strip() or not password:
        return _login_page(
            request,
            next_path,
            email=email,
            error="Enter your email address and password.",
            status=400,
        )
    # Every attempt counts, before the password is checked, so a guesser cannot go on
    # past the limit by waiting for a success. In its own short transaction, before this
    # request's session runs a query (see throttle.hit_alone).
    await throttle_attempt(request, settings, "login", email)
    user = await accounts.check_login(session, email, password)
    if user is None:
        return _login_page(
            request,
            next_path,
            email=email,
            status=400,
            error="That email address and password do not match an active account.",
        )
    token = await accounts.start_session(
        session,
        user,
        ip=client_ip(request, settings),
        user_agent=request.headers.get("user-agent", ""),
    )
    response = redirect(request, next_path)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.post("/admin/logout")
async def logout(request: Request, session: SessionDep, viewer: FormViewerDep) -> Response:
    await accounts.end_session(session, viewer)
    response = redirect(request, "/admin/login", "You are logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
