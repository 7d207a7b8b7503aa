"""`/admin/keys` (admin only): the API keys, a new key shown once, revoking one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.admin.deps import AdminDep, FormAdminDep
from app.admin.web import redirect, render
from app.keys import service as keys
from app.keys.schemas import KeyCreate
from app.kit.deps import SessionDep
from app.kit.errors import NotFound
from app.kit.ids import IdPath

router = APIRouter(include_in_schema=False)

# The page with a new key must not be kept by the browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}


async def _page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    *,
    created: tuple[str, str] | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    rows = await keys.list_keys(session)
    rows.sort(key=lambda row: (row.revoked_at is not None, -row.id))
    return render(
        request,
        viewer,
        "admin/keys.html",
        {
            "keys": rows,
            "created": created,
            "error": error,
            "form": form or {"name": "", "role": "editor"},
        },
        status_code=status,
        headers=NO_STORE if created else None,
    )


@router.get("/admin/keys")
async def keys_page(request: Request, session: SessionDep, viewer: AdminDep) -> Response:
    return await _page(request, session, viewer)


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "key"
    return f"The {field}: {first['msg'].removeprefix('Value error, ')}."


@router.post("/admin/keys")
async def create_key(
    request: Request,
    session: SessionDep,
    viewer: FormAdminDep,
    name: Annotated[str, Form(max_length=1000)] = "",
    role: Annotated[str, Form(max_length=20)] = "editor",
) -> Response:
    try:
        body = KeyCreate.model_validate({"name": name.strip(), "role": role})
    except ValidationError as exc:
        form = {"name": name, "role": role}
        return await _page(request, session, viewer, error=_problem(exc), form=form, status=400)
    row, key = await keys.create_key(session, name=body.name, role=body.role)
    await accounts.audit(
        session, viewer.actor, "key.create", f"key {row.id} {row.name}", f"role {row.role}"
    )
    # Shown in this answer and never again: no redirect, so the key is in no URL or cookie.
    return await _page(request, session, viewer, created=(row.name, key))


@router.post("/admin/keys/{key_id}/revoke")
async def revoke_key(
    request: Request, key_id: IdPath, session: SessionDep, viewer: FormAdminDep
) -> Response:
    try:
        row = await keys.find_key(session, str(key_id))
    except NotFound:
        raise NotFound("There is no such key.") from None
    if not await keys.revoke_key(session, row):
        return redirect(request, "/admin/keys", f"The key {row.name} was already revoked.")
    await accounts.audit(session, viewer.actor, "key.revoke", f"key {row.id} {row.name}")
    return redirect(request, "/admin/keys", f"The key {row.name} is revoked: it works no more.")
