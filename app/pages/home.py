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


def _has_section(request: Request, path: str) -> bool:
    """Whether any route or mount serves `path` or a page under it."""
    for route in request.app.router.routes:
        route_path = getattr(route, "path", "")
        if route_path == path or route_path.startswith(path + "/"):
            return True
    return False


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
            # The dashboard is linked once a route serves it, never to a 404.
            "dashboard_url": DASHBOARD_PATH if _has_section(request, DASHBOARD_PATH) else None,
            "docs_url": "/docs",
        },
    )
