from __future__ import annotations

from fastapi import APIRouter, status

from app.accounts import service as accounts
from app.keys import repository, service
from app.keys.deps import AdminKey
from app.keys.schemas import KeyCreate, KeyCreated, KeyRead
from app.kit.deps import SessionDep
from app.kit.errors import NotFound
from app.kit.ids import IdPath
from app.kit.pagination import Page, PageParamsDep, make_page

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(body: KeyCreate, session: SessionDep, by: AdminKey) -> KeyCreated:
    row, key = await service.create_key(session, name=body.name, role=body.role)
    detail = f"role {row.role}"
    await accounts.audit(session, by.actor, "key.create", f"key {row.id} {row.name}", detail)
    return KeyCreated(**KeyRead.model_validate(row).model_dump(), key=key)


@router.get("", response_model=Page[KeyRead])
async def list_keys(session: SessionDep, _: AdminKey, page: PageParamsDep) -> Page[KeyRead]:
    rows = await repository.list_page(session, after_id=page.after_id, limit=page.limit)
    return make_page([KeyRead.model_validate(r) for r in rows], [r.id for r in rows], page.limit)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: IdPath, session: SessionDep, by: AdminKey) -> None:
    row = await repository.get(session, key_id)
    if row is None:
        raise NotFound("no such key")
    if await service.revoke_key(session, row):
        await accounts.audit(session, by.actor, "key.revoke", f"key {row.id} {row.name}")
