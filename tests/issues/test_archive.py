from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Issue, Newsletter
from tests.factories import create_issue, create_newsletter
from tests.rendering.test_issue_message import XSS, assert_no_executable_markup

ATOM = "{http://www.w3.org/2005/Atom}"


async def sent(session: AsyncSession, newsletter: Newsletter, day: int, **kw: object) -> Issue:
    issue = await create_issue(
        session,
        newsletter,
        status="sent",
        sent_at=datetime(2026, 11, day, 9, 0, tzinfo=UTC),
        **kw,  # type: ignore[arg-type]
    )
    return issue


async def test_archive_lists_sent_issues_newest_first_and_nothing_else(
    client: AsyncClient, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    await sent(session, newsletter, 2, subject="First sent")
    await create_issue(session, newsletter, subject="Still a draft")
    await sent(session, newsletter, 9, subject="Second sent")
    response = await client.get("/newsletters/weekly/archive")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.index("Second sent") < page.index("First sent")
    assert "Still a draft" not in page
    assert 'href="http://testserver/newsletters/weekly/issues/1"' in page
    assert 'href="http://testserver/newsletters/weekly/subscribe"' in page
    assert 'type="application/atom+xml"' in page
    assert "9 November 2026" in page
    assert (await client.get("/newsletters/nope/archive")).status_code == 404


async def test_issue_page_shows_the_content_without_personal_data_or_tracking(
    client: AsyncClient, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session, track_opens=True, track_clicks=True)
    issue = await sent(session, newsletter, 2)
    response = await client.get(f"/newsletters/weekly/issues/{issue.number}")
    assert response.status_code == 200
    page = response.text
    assert "This week: findings, quotes &amp; more" in page
    assert "Story 3: something worth reading" in page
    assert 'href="https://example.org/stories/1"' in page
    assert "<strong>this week&#39;s</strong>" in page or "<strong>this week's</strong>" in page
    assert "Hi " not in page
    assert "/unsubscribe/" not in page
    assert "/t/o/" not in page
    assert "/t/c/" not in page
    assert "@@" not in page
    assert 'href="http://testserver/newsletters/weekly/subscribe"' in page
    assert "1 Fleet Street" in page


async def test_unsent_unknown_and_malformed_issue_numbers_are_404(
    client: AsyncClient, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    draft = await create_issue(session, newsletter)
    for status in ("draft", "ready", "scheduled", "sending", "cancelled"):
        draft.status = status
        await session.commit()
        response = await client.get(f"/newsletters/weekly/issues/{draft.number}")
        assert response.status_code == 404, status
    assert (await client.get("/newsletters/weekly/issues/99")).status_code == 404
    assert (await client.get("/newsletters/other/issues/1")).status_code == 404
    assert (await client.get("/newsletters/weekly/issues/abc")).status_code == 422
    assert (await client.get("/newsletters/weekly/feed.xml")).status_code == 200
    assert (await client.get("/newsletters/nope/feed.xml")).status_code == 404


async def test_atom_feed_is_well_formed_with_the_sent_issues(
    client: AsyncClient, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session, name="News & <Views>")
    await sent(session, newsletter, 2, subject="First <sent> & more")
    await sent(session, newsletter, 9, subject="Second sent")
    await create_issue(session, newsletter, subject="Draft")
    response = await client.get("/newsletters/weekly/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = ET.fromstring(response.content)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "News & <Views>"
    assert feed.findtext(f"{ATOM}id") == "http://testserver/newsletters/weekly/feed.xml"
    feed_updated = feed.findtext(f"{ATOM}updated", "")
    self_link = [link for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert self_link[0].get("href") == "http://testserver/newsletters/weekly/feed.xml"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Second sent", "First <sent> & more"]
    # The feed changed when its newest entry did.
    assert feed_updated == max(e.findtext(f"{ATOM}updated", "") for e in entries)
    for entry in entries:
        assert entry.findtext(f"{ATOM}id", "").startswith("http://testserver/newsletters/weekly/")
        assert entry.findtext(f"{ATOM}updated", "").endswith("Z")
        assert entry.find(f"{ATOM}link") is not None
        content = entry.find(f"{ATOM}content")
        assert content is not None
        assert content.get("type") == "html"
        assert "Story 1: something worth reading" in (content.text or "")
        assert "Hi " not in (content.text or "")
    assert entries[1].find(f"{ATOM}link").get("href") == (  # type: ignore[union-attr]
        "http://testserver/newsletters/weekly/issues/1"
    )


async def test_xss_in_editor_fields_never_reaches_the_archive_or_feed_as_markup(
    client: AsyncClient, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    await sent(
        session,
        newsletter,
        3,
        subject="<script>alert('s')</script>",
        preheader='"><script>alert("p")</script>',
        intro=XSS,
        outro=XSS + '<svg onload="alert(5)"></svg>',
        story_overrides=[
            {
                "title": '<img src=x onerror="alert(6)">',
                "body": XSS,
                "source": "<b onmouseover=alert(9)>src</b>",
                "image_url": 'https://img.example.org/a.png" onerror="alert(10)',
                "image_alt": '" onerror="alert(11)',
            }
        ],
        stories=1,
    )
    for url in ("/newsletters/weekly/archive", "/newsletters/weekly/issues/1"):
        page = (await client.get(url)).text
        assert_no_executable_markup(page, allow_relative=True)
        assert "&lt;script&gt;" in page
    feed = ET.fromstring((await client.get("/newsletters/weekly/feed.xml")).content)
    for entry in feed.findall(f"{ATOM}entry"):
        assert_no_executable_markup(entry.findtext(f"{ATOM}content", ""))
        assert entry.findtext(f"{ATOM}title") == "<script>alert('s')</script>"
