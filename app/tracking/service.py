"""Open and click tracking, off unless a newsletter turns it on.

Tokens are signed (app.kit.links) and carry only a delivery id and, for clicks, the
index of the link in that delivery's issue. The click redirect goes only to a link of
the issue's frozen HTML: a forged token, an index out of range or an issue with no
frozen HTML gets a 404, so the endpoint can never be used as an open redirect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit import links
from app.kit.addresses import AddressError, normalise_email
from app.kit.errors import Invalid, NotFound
from app.kit.ids import MAX_ID
from app.kit.tokens import Signer, TokenError, unsign_id
from app.models import EventKind
from app.rendering.markdown import is_web_url
from app.rendering.prepared import tracked_links
from app.subscribers.bounces import record_bounce
from app.tracking import repository
from app.tracking.reports import Report

# Characters kept as they are when a link goes into the Location header; anything
# else (non-ASCII) is percent-encoded so the header stays valid.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


async def record_open(session: AsyncSession, signer: Signer, token: str) -> bool:
    """Record an open for a valid token of a newsletter that tracks opens."""
    try:
        delivery_id = unsign_id(signer, links.OPEN, token)
    except TokenError:
        return False
    row = await repository.delivery_for_open(session, delivery_id)
    if row is None or not row.track_opens:
        return False
    await repository.add_event(
        session,
        kind=EventKind.open.value,
        issue_id=row.issue_id,
        delivery_id=row.id,
        subscription_id=row.subscription_id,
    )
    return True


@lru_cache(maxsize=64)
def _links(issue_id: int, rendered_at: datetime | None, html: str) -> tuple[str, ...]:
    # Keyed by issue and freeze time; the HTML argument only fills a miss.
    return tuple(tracked_links(html))


async def resolve_click(session: AsyncSession, signer: Signer, token: str) -> str:
    """The link a click token points to (recording the click), or NotFound."""
    try:
        parts = signer.unsign(links.CLICK, token)
    except TokenError:
        raise NotFound("unknown link") from None
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise NotFound("unknown link")
    delivery_id, index = int(parts[0]), int(parts[1])
    row = await repository.delivery_for_click(session, delivery_id)
    if row is None or not row.rendered_html:
        raise NotFound("unknown link")
    issue_links = _links(row.issue_id, row.rendered_at, row.rendered_html)
    if index >= len(issue_links) or not is_web_url(issue_links[index]):
        raise NotFound("unknown link")
    url = issue_links[index]
    if row.track_clicks:
        await repository.add_event(
            session,
            kind=EventKind.click.value,
            issue_id=row.issue_id,
            delivery_id=row.id,
            subscription_id=row.subscription_id,
            url=url,
        )
    return quote(url, safe=_URL_SAFE)


@dataclass(frozen=True)
class LinkClicks:
    url: str
    clicks: int
    unique_clicks: int


async def clicks_by_link(
    session: AsyncSession, issue_id: int, *, limit: int = 100
) -> list[LinkClicks]:
    """Clicks per link of an issue (total and by distinct readers), most clicked first."""
    rows = await repository.clicks_by_link(session, issue_id, limit=limit)
    return [LinkClicks(str(row.url), int(row.clicks), int(row.unique_clicks)) for row in rows]


# -- bounces and complaints reported after the SMTP conversation -----------------------------

# <d{delivery}.i{issue}.{installation tag}@host>, and the older form without the tag.
_OUR_MESSAGE_ID = re.compile(r"^<d(\d+)\.i\d+(?:\.[a-z2-7]{10})?@[^>]*>$")


@dataclass(frozen=True)
class RecordedReports:
    recorded: int
    suppressed: int


async def record_reports(
    session: AsyncSession, reports: list[Report], now: datetime
) -> RecordedReports:
    """Apply parsed bounce and complaint reports; a report that names nothing we sent
    and no valid address is left out (it is counted neither recorded nor suppressed)."""
    recorded = suppressed = 0
    for report in reports:
        target = await _resolve(session, report)
        if target is None:
            continue
        address, issue_id, delivery_id, subscription_id = target
        if await record_bounce(
            session,
            email=address,
            kind=report.kind,
            detail=report.diagnostic,
            now=now,
            issue_id=issue_id,
            delivery_id=delivery_id,
            subscription_id=subscription_id,
        ):
            suppressed += 1
        recorded += 1
    return RecordedReports(recorded, suppressed)


async def _resolve(
    session: AsyncSession, report: Report
) -> tuple[str, int | None, int | None, int | None] | None:
    """(address, issue, delivery, subscription) for a report; None when nothing matches."""
    if report.message_id:
        message_id = report.message_id.strip()
        if not message_id.startswith("<"):
            message_id = f"<{message_id}>"
        match = _OUR_MESSAGE_ID.match(message_id)
        hint = int(match.group(1)) if match and int(match.group(1)) <= MAX_ID else None
        row = await repository.delivery_by_message_id(session, message_id, delivery_id=hint)
        if row is not None:
            return str(row.email), int(row.issue_id), int(row.id), int(row.subscription_id)
    if not report.email:
        return None
    try:
        address = normalise_email(report.email, allow_utf8_local=True)
    except AddressError:
        raise Invalid(("email",), "not a valid email address") from None
    return address, None, None, None
