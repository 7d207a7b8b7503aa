"""`/admin`: every newsletter with its subscribers, what is sending, what is next."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.admin.deps import ViewerDep
from app.admin.web import render
from app.kit.deps import SessionDep
from app.newsletters import service as newsletters

router = APIRouter(include_in_schema=False)

SHOWN = 200


@router.get("/admin")
async def home(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    shown = await newsletters.list_page(session, after_id=0, limit=SHOWN)
    return render(request, viewer, "admin/home.html", {"newsletters": shown})
