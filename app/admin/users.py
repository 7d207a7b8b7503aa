"""`/admin/users` (admin only): who may log in, their roles, passwords, disabling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.admin.deps import AdminDep, FormAdminDep
from app.admin.web import password_problem, problem, redirect, render
from app.kit.deps import SessionDep
from app.kit.errors import BroadsheetError, NotFound
from app.kit.ids import IdPath
from app.models import Role, User

router = APIRouter(include_in_schema=False)

Password = Annotated[str, Form(max_length=2000)]


def _role(value: str) -> Role | None:
    return Role(value) if value in (Role.admin.value, Role.editor.value) else None


async def _list_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    users = await accounts.list_users(session)
    context: dict[str, Any] = {
        "users": users,
        "error": error,
        "form": form or {"email": "", "role": "editor"},
    }
    return render(request, viewer, "admin/users.html", context, status_code=status)


@router.get("/admin/users")
async def users_page(request: Request, session: SessionDep, viewer: AdminDep) -> Response:
    return await _list_page(request, session, viewer)


@router.post("/admin/users")
async def create_user(
    request: Request,
    session: SessionDep,
    viewer: FormAdminDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=20)] = "editor",
    password: Password = "",
    password_again: Password = "",
) -> Response:
    form = {"email": email, "role": role}
    chosen = _role(role)
    error = password_problem(password, password_again)
    if chosen is None:
        error = "The role must be admin or editor."
    if error is None and chosen is not None:
        try:
            user = await accounts.create_user(session, email=email, role=chosen, password=password)
        except BroadsheetError as exc:
            error = problem(exc)
        else:
            await accounts.audit(
                session, viewer.actor, "user.create", user.email, f"role {user.role}"
            )
            return redirect(request, "/admin/users", f"{user.email} can now log in as {user.role}.")
    return await _list_page(request, session, viewer, error=error, form=form, status=400)


async def _user(session: AsyncSession, user_id: int) -> User:
    try:
        return await accounts.get_user_by_id(session, user_id)
    except NotFound:
        raise NotFound("There is no such user.") from None


async def _user_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    user: User,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {"user": user, "error": error, "is_self": user.id == viewer.user_id}
    return render(request, viewer, "admin/user.html", context, status_code=status)


@router.get("/admin/users/{user_id}")
async def user_page(
    request: Request, user_id: IdPath, session: SessionDep, viewer: AdminDep
) -> Response:
    return await _user_page(request, session, viewer, await _user(session, user_id))


@router.post("/admin/users/{user_id}/role")
async def change_role(
    request: Request,
    user_id: IdPath,
    session: SessionDep,
    viewer: FormAdminDep,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    user = await _user(session, user_id)
    chosen = _role(role)
    if chosen is None:
        error = "The role must be admin or editor."
        return await _user_page(request, session, viewer, user, error=error, status=400)
    try:
        changed = await accounts.change_role(session, user, chosen, by=viewer)
    except BroadsheetError as exc:
        return await _user_page(request, session, viewer, user, error=problem(exc), status=409)
    url = f"/admin/users/{user.id}"
    if not changed:
        return redirect(request, url, f"{user.email} is already {chosen.value}.")
    await accounts.audit(session, viewer.actor, "user.role", user.email, f"role {chosen.value}")
    return redirect(request, url, f"{user.email} is now {chosen.value}.")


@router.post("/admin/users/{user_id}/password")
async def set_password(
    request: Request,
    user_id: IdPath,
    session: SessionDep,
    viewer: FormAdminDep,
    password: Password = "",
    password_again: Password = "",
) -> Response:
    user = await _user(session, user_id)
    error = password_problem(password, password_again)
    if error is None:
        try:
            await accounts.set_password(session, user, password)
        except BroadsheetError as exc:
            error = problem(exc)
    if error is not None:
        return await _user_page(request, session, viewer, user, error=error, status=400)
    await accounts.audit(session, viewer.actor, "user.password", user.email)
    if user.id == viewer.user_id:
        # A new password ends every session, this one too.
        return redirect(request, "/admin/login", "Your password is changed: log in with it.")
    return redirect(
        request, f"/admin/users/{user.id}", f"New password set; {user.email} was logged out."
    )


async def _set_disabled(
    request: Request, session: AsyncSession, viewer: Viewer, user_id: int, disabled: bool
) -> Response:
    user = await _user(session, user_id)
    try:
        changed = await accounts.change_disabled(session, user, disabled, by=viewer)
    except BroadsheetError as exc:
        return await _user_page(request, session, viewer, user, error=problem(exc), status=409)
    word = "disabled" if disabled else "enabled"
    if changed:
        await accounts.audit(session, viewer.actor, f"user.{word[:-1]}", user.email)
    message = f"{user.email} is {word}." if changed else f"{user.email} was already {word}."
    return redirect(request, f"/admin/users/{user.id}", message)


@router.post("/admin/users/{user_id}/disable")
async def disable_user(
    request: Request, user_id: IdPath, session: SessionDep, viewer: FormAdminDep
) -> Response:
    return await _set_disabled(request, session, viewer, user_id, True)


@router.post("/admin/users/{user_id}/enable")
async def enable_user(
    request: Request, user_id: IdPath, session: SessionDep, viewer: FormAdminDep
) -> Response:
    return await _set_disabled(request, session, viewer, user_id, False)
