"""An issue's page while and after it sends: live progress, controls, the way to the report."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.service import Viewer
from app.admin.web import render
from app.delivery import service as delivery
from app.models import Issue, Newsletter


async def send_view(
    request: Request, session: AsyncSession, viewer: Viewer, issue: Issue, newsletter: Newsletter
) -> Response:
    """The page of an issue that is sending, paused, sent or cancelled."""
    stats = await delivery.stats(session, issue)
    return render(
        request,
        viewer,
        "admin/issue_sending.html",
        {"issue": issue, "newsletter": newsletter, "stats": stats},
    )
