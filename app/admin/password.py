"""Forgotten passwords: a reset link by email (signed, one use, one hour; SPEC section 11).

`/admin/password/forgot` answers the same whether or not the address has an account, so
it tells a stranger nothing; requests are rate-limited per client and per address like
the login. The mail is written to the outbox in the request's transaction. The link's
page (`/admin/password/reset/{token}`) changes nothing on GET; its POST sets the
password, which spends the link (see `accounts.reset_token`) and ends every session.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from jinja2 import TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from app.accounts import service as accounts
from app.admin.deps import require_same_origin, throttle_attempt
from app.admin.web import password_problem, problem, redirect, render
from app.delivery import service as delivery
from app.kit.deps import SessionDep, SettingsDep, SignerDep
from app.kit.errors import BroadsheetError
from app.models import User
from app.rendering.environment import email_environment
from app.rendering.inlining import inline_css
from app.rendering.placeholders import fill, placeholder
from app.settings import Settings

router = APIRouter(include_in_schema=False)

RESET_KIND = "password-reset"
SUBJECT = "Reset your Broadsheet password"
# The link's page carries the token in its address: no referrer, no cache.
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
Token = Annotated[str, Path(max_length=512)]
Password = Annotated[str, Form(max_length=2000)]


@router.get("/admin/password/forgot")
async def forgot_form(request: Request) -> Response:
    return render(request, None, "admin/password_forgot.html", {"email": "", "sent": False})


def _environment(templates_dir: FilePath | None) -> SandboxedEnvironment:
    """The deployment's templates, or Broadsheet's when its folder lacks the reset mail."""
    env = email_environment(templates_dir)
    try:
        env.get_template("password_reset.txt")
        env.get_template("password_reset.html")
    except TemplateNotFound:
        return email_environment(None)
    return env


# The account's address and link go into the inlined HTML as placeholders: premailer
# then runs once per process, not once per request, which also keeps an existing
# account's answer as quick as a missing one's.
@lru_cache(maxsize=8)
def _inlined_html(templates_dir: FilePath | None, site: str) -> str:
    template = _environment(templates_dir).get_template("password_reset.html")
    html = template.render(email=placeholder("EMAIL"), reset_url=placeholder("URL"), site=site)
    return inline_css(html)


def render_reset_mail(settings: Settings, user: User, url: str) -> tuple[str, str]:
    """The (text, inlined HTML) of the reset mail."""
    context = {"email": user.email, "reset_url": url, "site": settings.base_host}
    text = _environment(settings.templates_dir).get_template("password_reset.txt").render(context)
    html = _inlined_html(settings.templates_dir, settings.base_host)
    return text, fill(html, {"EMAIL": user.email, "URL": url})


@router.post("/admin/password/forgot")
async def forgot(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    require_same_origin(request, settings)
    if not email.strip():
        context = {"email": "", "sent": False, "error": "Enter your email address."}
        return render(request, None, "admin/password_forgot.html", context, status_code=400)
    # Before this request's session runs a query (see throttle.hit_alone).
    await throttle_attempt(request, settings, "reset", email)
    user = await accounts.find_user(session, email)
    if user is not None and user.disabled_at is None:
        url = f"{settings.base_url}/admin/password/reset/{accounts.reset_token(signer, user)}"
        text, html = render_reset_mail(settings, user, url)
        await delivery.queue_system_mail(
            session,
            settings,
            to_email=user.email,
            subject=SUBJECT,
            text=text,
            html=html,
            kind=RESET_KIND,
        )
        await accounts.audit(session, "password reset form", "user.reset-mail", user.email)
    return render(request, None, "admin/password_forgot.html", {"email": email, "sent": True})


def _bad_link(request: Request) -> Response:
    return render(request, None, "admin/password_invalid.html", status_code=400, headers=PRIVATE)


def _reset_page(
    request: Request, token: str, user: User, error: str | None = None, status: int = 200
) -> Response:
    context = {"token": token, "email": user.email, "error": error}
    return render(
        request, None, "admin/password_reset.html", context, status_code=status, headers=PRIVATE
    )


@router.get("/admin/password/reset/{token}")
async def reset_form(
    request: Request, token: Token, session: SessionDep, signer: SignerDep
) -> Response:
    user = await accounts.user_for_reset(session, signer, token)
    if user is None:
        return _bad_link(request)
    return _reset_page(request, token, user)


@router.post("/admin/password/reset/{token}")
async def reset(
    request: Request,
    token: Token,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    password: Password = "",
    password_again: Password = "",
) -> Response:
    require_same_origin(request, settings)
    user = await accounts.user_for_reset(session, signer, token)
    if user is None:
        return _bad_link(request)
    error = password_problem(password, password_again)
    if error is None:
        try:
            await accounts.set_password(session, user, password)
        except BroadsheetError as exc:
            error = problem(exc)
    if error is not None:
        return _reset_page(request, token, user, error, 400)
    await accounts.audit(session, f"user {user.email}", "user.password", user.email, "reset link")
    return redirect(request, "/admin/login", "Your password is changed: log in with it.")
