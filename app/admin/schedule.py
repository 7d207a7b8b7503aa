"""`/admin/newsletters/{slug}/schedule`: next ticks, the upcoming issue, recent ticks.

The same overview as GET /api/v1/newsletters/{slug}/schedule, from scheduling's service.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.admin.deps import ViewerDep
from app.admin.home import next_send
from app.admin.web import render
from app.kit.clock import utcnow
from app.kit.deps import SessionDep, SettingsDep
from app.newsletters.deps import NewsletterDep
from app.scheduling import service as scheduling

router = APIRouter(include_in_schema=False)


@router.get("/admin/newsletters/{slug}/schedule")
async def schedule_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: ViewerDep,
    newsletter: NewsletterDep,
) -> Response:
    overview = await scheduling.overview(session, newsletter, settings=settings, now=utcnow())
    context = {
        "newsletter": newsletter,
        "tab": "schedule",
        "overview": overview,
        "next_send": next_send(overview),
    }
    return render(request, viewer, "admin/schedule.html", context)
