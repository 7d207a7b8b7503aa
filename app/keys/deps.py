"""API-key authentication as request dependencies: `EditorKey`, `AdminKey`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.keys.service import Principal, authenticate
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import Forbidden, Unauthorized
from app.models import Role


async def get_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized()
    principal = await authenticate(session, presented.strip(), settings.admin_api_key)
    if principal is None:
        raise Unauthorized()
    return principal


async def require_editor(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    return principal  # admin and editor both may


async def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.role is not Role.admin:
        raise Forbidden("this needs an admin key")
    return principal


EditorKey = Annotated[Principal, Depends(require_editor)]
AdminKey = Annotated[Principal, Depends(require_admin)]
