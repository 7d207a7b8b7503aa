"""`/admin/audit` (admin only): who did what, newest first, in keyset pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.accounts import service as accounts
from app.admin.deps import AdminDep
from app.admin.web import render
from app.kit.deps import SessionDep
from app.kit.ids import MAX_ID

router = APIRouter(include_in_schema=False)

PAGE = 50


@router.get("/admin/audit")
async def audit_page(
    request: Request,
    session: SessionDep,
    viewer: AdminDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    # One more than shown tells whether an older page exists.
    rows = list(await accounts.audit_page(session, limit=PAGE + 1, before_id=before))
    older = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render(
        request,
        viewer,
        "admin/audit.html",
        {"events": rows[:PAGE], "older": older, "paged": before is not None},
    )
