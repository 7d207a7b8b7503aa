"""The home page at `/`: what this site is and where to go from here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.kit.deps import SessionDep
from app.newsletters import service as newsletters
from app.pages.templates import templates

router = APIRouter(include_in_schema=False)

HOME_NEWSLETTERS = 100
DASHBOARD_PATH = "/admin"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, session: SessionDep) -> HTMLResponse:
    shown = await newsletters.list_page(session, after_id=0, limit=HOME_NEWSLETTERS)
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "newsletter": None,
            "newsletters": shown[:HOME_NEWSLETTERS],
            "more": len(shown) > HOME_NEWSLETTERS,
            "dashboard_url": DASHBOARD_PATH,
            "docs_url": "/docs",
        },
    )
