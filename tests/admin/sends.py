"""Issues in the middle of a send for the send view and report tests.

A send is started with the delivery service (`start_send`), as the API does; outcomes
are then written straight into the delivery rows, so that a test decides exactly how
many are sent, failed or bounced without running the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.deps import ViewerDep
from app.admin.sending import send_view
from app.delivery import service as delivery
from app.issues import service as issues
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.deps import SessionDep
from app.models import Delivery, Event, EventKind, Issue
from app.settings import Settings
from tests.factories import create_issue, create_newsletter, create_readers

Maker = async_sessionmaker[AsyncSession]
REPLIES = {
    "sent": "250 2.0.0 Ok: queued as 4F2A",
    "failed": "451 4.3.0 Try again later",
    "bounced": "550 5.1.1 <x>: Recipient address rejected: User unknown",
}


async def start_issue(
    sessionmaker: Maker, settings: Settings, readers: int, **newsletter: Any
) -> tuple[int, list[str]]:
    """A newsletter with `readers` readers and an issue of it now sending: (issue, emails)."""
    async with unit_of_work(sessionmaker) as session:
        values: dict[str, Any] = {"slug": "weekly", "double_opt_in": False}
        values.update(newsletter)
        letter = await create_newsletter(session, **values)
        emails = await create_readers(session, letter, readers)
        issue = await create_issue(session, letter, subject="The week in review")
        issue_id = issue.id
    async with unit_of_work(sessionmaker) as session:
        loaded = await issues.get(session, issue_id)
        await delivery.start_send(session, loaded, settings=settings)
    return issue_id, emails


async def set_outcomes(sessionmaker: Maker, issue_id: int, outcomes: Mapping[str, int]) -> None:
    """Move the first queued deliveries (by id) to these statuses, as the engine would."""
    async with unit_of_work(sessionmaker) as session:
        for status, how_many in outcomes.items():
            ids = (
                await session.execute(
                    select(Delivery.id)
                    .where(Delivery.issue_id == issue_id, Delivery.status == "queued")
                    .order_by(Delivery.id)
                    .limit(how_many)
                )
            ).scalars()
            now = utcnow()
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(list(ids)))
                .values(
                    status=status,
                    attempts=1 if status != "failed" else 5,
                    last_reply=REPLIES.get(status),
                    sent_at=now if status == "sent" else None,
                    updated_at=now - timedelta(seconds=1),
                )
            )


async def set_issue_status(sessionmaker: Maker, issue_id: int, status: str) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(update(Issue).where(Issue.id == issue_id).values(status=status))


async def add_clicks(sessionmaker: Maker, issue_id: int, url: str, readers: int, each: int) -> None:
    """`each` clicks on `url` by each of the first `readers` sent deliveries."""
    async with unit_of_work(sessionmaker) as session:
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.subscription_id)
                .where(Delivery.issue_id == issue_id, Delivery.status == "sent")
                .order_by(Delivery.id)
                .limit(readers)
            )
        ).all()
        for delivery_id, subscription_id in rows:
            for _ in range(each):
                session.add(
                    Event(
                        kind=EventKind.click.value,
                        issue_id=issue_id,
                        delivery_id=delivery_id,
                        subscription_id=subscription_id,
                        url=url,
                    )
                )
                session.add(
                    Event(
                        kind=EventKind.open.value,
                        issue_id=issue_id,
                        delivery_id=delivery_id,
                        subscription_id=subscription_id,
                    )
                )


def issue_page(app: FastAPI) -> str:
    """Where an issue's page is: the editor's `/admin/issues/{id}` once it exists, else a
    stand-in for it, ahead of the dashboard's catch-all, that calls `send_view` the same way
    (under /admin, so that the flash cookie of a redirect reaches it)."""
    path = "/admin/issues/{issue_id}"
    if any(getattr(route, "path", "") == path for route in app.routes):
        return path

    async def page(
        request: Request, session: SessionDep, viewer: ViewerDep, issue_id: int
    ) -> Response:
        loaded = await issues.load(session, issue_id)
        return await send_view(request, session, viewer, loaded.issue, loaded.newsletter)

    app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.router.routes.insert(0, app.router.routes.pop())
    return path


async def status_of(sessionmaker: Maker, issue_id: int) -> str:
    """The issue's status, read in a fresh session."""
    async with sessionmaker() as session:
        return str(await session.scalar(select(Issue.status).where(Issue.id == issue_id)))
