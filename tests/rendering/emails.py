"""Realistic emails taken from the paths that send them (preview, subscribe), for checks.

The issue has ten stories with images (one in the editor's own HTML, sized the way
web pages do), links, code, a table, and in the first story an
unbroken 120-character token and a 120-character URL, bare and as a link: the content
that once pushed the layout past a phone's width.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Newsletter, OutboxMessage
from tests.factories import create_issue

LONG_TOKEN = "Supercalifragilistic" * 6
LONG_URL = "https://example.org/" + "a-very-long-path-segment" * 4 + "abcd"
assert len(LONG_TOKEN) == 120
assert len(LONG_URL) == 120

STORY_BODY = (
    "Researchers published *new findings* on Tuesday, with [the full paper]"
    "(https://example.org/paper?id=42&lang=en) and a summary that runs on for a while.\n\n"
    "![A chart of the findings](https://img.example.org/chart.png)\n\n"
    '<img src="https://img.example.org/wide.png" alt="A wide photo" width="100%" height="auto">\n\n'
    "- the first point, with `inline_code()`\n- the second point\n\n"
    "> A quote from someone involved, which is worth reading twice.\n\n"
    "```\nbroadsheet send 12 --watch\n```\n\n"
    "| Metric | Value |\n|---|---|\n| Readers | 1,204 |\n"
)
LONG_WORDS = f"\n\nThe token {LONG_TOKEN} and the link {LONG_URL}, also [as a link]({LONG_URL}).\n"


async def issue_email_html(
    client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str], paper: Newsletter
) -> str:
    """The HTML part of a ten-story issue, as the editor's preview shows it."""
    bodies = [{"body": STORY_BODY + (LONG_WORDS if i == 0 else "")} for i in range(10)]
    issue = await create_issue(session, paper, stories=10, story_overrides=bodies)
    response = await client.get(f"/api/v1/issues/{issue.id}/preview", headers=editor_headers)
    assert response.status_code == 200, response.text
    return response.text


async def confirmation_email_html(
    client: AsyncClient, session: AsyncSession, paper: Newsletter
) -> str:
    """The HTML part of the confirmation email a subscribe writes to the outbox."""
    response = await client.post(
        f"/newsletters/{paper.slug}/subscribe",
        json={"email": "rita@example.com", "name": "Rita"},
    )
    assert response.status_code == 202, response.text
    row = (await session.execute(select(OutboxMessage))).scalars().one()
    message = email.message_from_bytes(row.message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert isinstance(content, str)
    return content
