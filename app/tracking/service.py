"""Open and click tracking, off unless a newsletter turns it on.

Tokens are signed (app.kit.links) and carry only a delivery id and, for clicks, the
index of the link in that delivery's issue. The click redirect goes only to a link of
the issue's frozen HTML: a forged token, an index out of range or an issue with no
frozen HTML gets a 404, so the endpoint can never be used as an open redirect.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit import links
from app.kit.errors import NotFound
from app.kit.tokens import Signer, TokenError, unsign_id
from app.models import EventKind
from app.rendering.markdown import is_web_url
from app.rendering.prepared import tracked_links
from app.tracking import repository

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
