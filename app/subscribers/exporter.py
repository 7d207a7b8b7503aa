"""CSV export of a newsletter's subscriptions, streamed page by page (keyset by id).

Its columns are the ones the importer reads back (status and dates are ignored there),
so an export imports cleanly into another newsletter or installation.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi.responses import StreamingResponse
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.subscribers import repository

EXPORT_PAGE = 1000
EXPORT_COLUMNS = [
    "email",
    "name",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "attributes",
]
EXPORT_STATUS_ORDER = ["active", "pending", "unsubscribed", "bounced", "complained"]


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def _csv_rows(page: Sequence[Row[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in page:
        writer.writerow(
            [
                row.email,
                row.name,
                row.status,
                row.source,
                row.created_at.isoformat(),
                row.confirmed_at.isoformat() if row.confirmed_at else "",
                row.unsubscribed_at.isoformat() if row.unsubscribed_at else "",
                json.dumps(row.attributes or {}, ensure_ascii=False, sort_keys=True),
            ]
        )
    return buffer.getvalue()


async def export_csv(
    sessionmaker: async_sessionmaker[AsyncSession], *, newsletter_id: int, status: str | None
) -> AsyncIterator[str]:
    """The header line, then every subscription (with `status`, or all of them grouped by
    status: active, pending, unsubscribed, bounced, complained) as CSV text."""
    # One status after another, each walked by id: every page is then a range scan of
    # the (newsletter_id, status, id) index, however many rows the newsletter has.
    statuses = [status] if status else EXPORT_STATUS_ORDER
    yield _csv_line(EXPORT_COLUMNS)
    for current in statuses:
        after_id = 0
        while True:
            # Its own session per page: the request's session is closed by the time the
            # body streams, and no transaction stays open between pages.
            async with sessionmaker() as session:
                page = await repository.export_page(
                    session,
                    newsletter_id=newsletter_id,
                    status=current,
                    after_id=after_id,
                    limit=EXPORT_PAGE,
                )
            if not page:
                break
            yield _csv_rows(page)
            after_id = page[-1].id
            if len(page) < EXPORT_PAGE:
                break


def export_download(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    newsletter_id: int,
    slug: str,
    status: str | None,
) -> StreamingResponse:
    """The export as a CSV download (the REST API's and the dashboard's alike), named
    after the newsletter and the status chosen, never cached."""
    suffix = f"-{status}" if status else ""
    return StreamingResponse(
        export_csv(sessionmaker, newsletter_id=newsletter_id, status=status),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{slug}-subscribers{suffix}.csv"',
            "Cache-Control": "no-store",
        },
    )
