"""`/admin/issues/{id}/report`: how an issue's send went.

Outcomes of its deliveries, the unsubscribes and complaints it caused, opens and clicks
(and clicks per link) when the newsletter tracks them, and the deliveries themselves,
filtered by status and walked in keyset pages by id: the same services as the REST
API's `/stats` and `/deliveries`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.admin.deps import ViewerDep
from app.admin.progress import BadQuery
from app.admin.web import render
from app.delivery import service as delivery
from app.issues import service as issues
from app.kit.deps import SessionDep
from app.kit.errors import Invalid
from app.kit.ids import IdPath
from app.kit.pagination import decode_cursor, encode_cursor
from app.models import DeliveryStatus
from app.tracking import service as tracking

router = APIRouter(include_in_schema=False)

PAGE = 50
LINKS_SHOWN = 100
TABS = tuple(state.value for state in DeliveryStatus)


def _page_url(issue_id: int, status: str | None, cursor: str | None = None) -> str:
    query = {key: value for key, value in (("status", status), ("cursor", cursor)) if value}
    base = f"/admin/issues/{issue_id}/report"
    return f"{base}?{urlencode(query)}" if query else base


def _tabs(issue_id: int, stats: dict[str, Any]) -> list[dict[str, Any]]:
    tabs = [{"status": None, "label": "All", "count": stats["recipients"]}]
    tabs += [{"status": s, "label": s.capitalize(), "count": stats[s]} for s in TABS]
    for tab in tabs:
        tab["url"] = _page_url(issue_id, tab["status"])
    return tabs


def _filters(status: str | None, cursor: str | None) -> int:
    """Check the status filter and the cursor (422 naming the parameter); the id to page
    after."""
    try:
        delivery.check_delivery_status(status)
    except Invalid as exc:
        raise BadQuery("status", exc.message) from None
    try:
        return decode_cursor(cursor) if cursor else 0
    except Invalid:
        raise BadQuery(
            "cursor", "is not a link of this report: start from its first page"
        ) from None


@router.get("/admin/issues/{issue_id}/report")
async def report(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    issue_id: IdPath,
    status: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    status = status or None
    after_id = _filters(status, cursor)
    loaded = await issues.load(session, issue_id)
    issue, newsletter = loaded.issue, loaded.newsletter
    stats = await delivery.stats(session, issue)
    rows = await delivery.list_deliveries(
        session, issue.id, status=status, after_id=after_id, limit=PAGE
    )
    next_url = (
        _page_url(issue.id, status, encode_cursor(rows[PAGE - 1].id)) if len(rows) > PAGE else None
    )
    links = []
    if newsletter.track_clicks:
        links = await tracking.clicks_by_link(session, issue.id, limit=LINKS_SHOWN)
    return render(
        request,
        viewer,
        "admin/report.html",
        {
            "issue": issue,
            "newsletter": newsletter,
            "stats": stats,
            "links": links,
            "deliveries": rows[:PAGE],
            "status": status,
            "tabs": _tabs(issue.id, stats),
            "next_url": next_url,
            "first_url": _page_url(issue.id, status) if cursor else None,
        },
    )
