"""An editor runs the weekly newsletter from the dashboard alone, in headless Chromium.

Against a real `broadsheet serve` and `broadsheet worker` on the test database, with the
test's SMTP server: log in, create a newsletter, write an issue with two stories, look at
the phone preview, send a test (it arrives), send to 500 subscribers and watch the page
reach "sent" without a reload, then read the report. Then what an editor may not do:
the admin pages (403), a form from another origin or without its token (refused, nothing
changed), an idle session and a logged-out one (back to the login page), and a `next`
that points off the site (ignored).

With BROADSHEET_SCREENSHOTS=DIR (see scripts/screenshots) the journey's screenshots are
also written to DIR: the README's pictures come from this test, not from a hand.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.models import Issue, Newsletter, Role, UserSession
from tests.admin.support import PASSWORD, make_user
from tests.browser.dashboard import SHOTS
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401
from tests.factories import create_readers
from tests.smtp import MailSink

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

EDITOR = "editor@example.com"
READERS = 500


async def _shot(page: Any, name: str) -> None:
    """A screenshot for the record, and for the README when BROADSHEET_SCREENSHOTS is set."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"journey-{name}.png"), full_page=True)
    target = os.environ.get("BROADSHEET_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=False)


async def _log_in(page: Any, base: str, email: str = EDITOR) -> None:
    await page.goto(f"{base}/admin")
    assert "/admin/login" in page.url
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/admin")


async def _create_newsletter(page: Any, base: str) -> None:
    await page.get_by_role("link", name="New newsletter").first.click()
    await page.get_by_label("Name", exact=True).fill("The Harbour Weekly")
    await page.get_by_label("Slug").fill("harbour")
    await page.get_by_label("From name").fill("The Harbour Weekly")
    await page.get_by_label("From address").fill("weekly@harbour.example.org")
    await page.get_by_label("Postal address").fill("12 Quay Street, 4100 Portmouth")
    await page.get_by_role("button", name="Create newsletter").click()
    await page.wait_for_load_state()
    assert "/admin/newsletters/harbour" in page.url


async def _write_issue(page: Any, base: str) -> int:
    await page.goto(f"{base}/admin/newsletters/harbour/issues")
    await page.get_by_role(
        "button", name=re.compile("New issue|Write the first issue")
    ).first.click()
    await page.wait_for_url(re.compile(r".*/admin/issues/\d+$"))
    issue_id = int(page.url.rsplit("/", 1)[1])
    await page.get_by_label("Subject").fill("Tides, trams and a library that never closes")
    await page.get_by_label("Intro", exact=False).first.fill("Good morning. Two stories this week.")
    for title, url in (
        ("The tram extension passes", "https://example.org/trams"),
        ("The library stays open all night", "https://example.org/library"),
    ):
        if not await page.locator("#new-story").evaluate("details => details.open"):
            await page.get_by_text("Add a story", exact=True).click()
        await page.locator("#new-title").fill(title)
        await page.locator("#new-body").fill(f"What happened with *{title.lower()}*.")
        await page.locator("#new-url").fill(url)
        await page.get_by_role("button", name="Add story").click()
        await page.wait_for_load_state()
    assert await page.locator("fieldset.story").count() == 2
    return issue_id


async def _phone_preview(page: Any) -> None:
    await page.get_by_text("375 px", exact=True).click()
    frame = page.locator("iframe.preview-frame")
    await frame.wait_for()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        box = await frame.bounding_box()
        if box is not None and abs(box["width"] - 375) < 2:
            break
        await asyncio.sleep(0.1)
    box = await frame.bounding_box()
    assert box is not None
    assert abs(box["width"] - 375) < 2, box
    text = await frame.content_frame.locator("body").inner_text()
    assert "The library stays open all night" in text
    await _shot(page, "editor")


async def _wait_for_mail(mailbox: MailSink, address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mailbox.to(address):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no mail for {address}")


async def _send_and_watch(page: Any, base: str, issue_id: int) -> None:
    await page.get_by_role("link", name="Send now…").click()
    heading = await page.locator("h1").inner_text()
    assert f"to {READERS} subscribers of The Harbour Weekly" in heading
    await page.get_by_role("button", name=f"Send to {READERS} subscribers").click()
    await page.wait_for_url(f"{base}/admin/issues/{issue_id}")
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    await _shot(page, "sending")
    progress = page.locator("#send-progress .badge")
    await progress.filter(has_text="sent").wait_for(timeout=90_000)
    assert navigations == [], "the page reloaded to show progress"
    sent = await page.locator("#send-progress").inner_text()
    assert f"{READERS} of {READERS}" in sent


async def test_an_editor_runs_the_weekly_issue_from_the_dashboard(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    mailbox: MailSink,
) -> None:
    await make_user(sessionmaker, EDITOR, Role.editor)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await _log_in(page, server)
    await _shot(page, "home-empty")
    await _create_newsletter(page, server)
    newsletter = await session.scalar(select(Newsletter).where(Newsletter.slug == "harbour"))
    assert newsletter is not None
    await create_readers(session, newsletter, READERS, prefix="harbour-reader")
    await session.commit()

    issue_id = await _write_issue(page, server)
    await _phone_preview(page)

    await page.get_by_label("To", exact=True).fill("desk@example.com")
    await page.get_by_role("button", name="Send test").click()
    await page.wait_for_load_state()
    await _wait_for_mail(mailbox, "desk@example.com")

    await _send_and_watch(page, server, issue_id)
    await page.get_by_role("link", name="Report").click()
    await page.wait_for_url(f"{server}/admin/issues/{issue_id}/report")
    assert "500" in await page.locator("main").inner_text()
    await _shot(page, "report")
    await page.goto(f"{server}/admin/newsletters/harbour/issues")
    await _shot(page, "issues")
    await page.goto(f"{server}/admin/newsletters/harbour/subscribers")
    await _shot(page, "subscribers")
    await page.goto(f"{server}/admin")
    await _shot(page, "home")
    assert len(mailbox.messages) >= READERS + 1
    await context.close()


async def test_what_an_editor_may_not_do(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    await make_user(sessionmaker, EDITOR, Role.editor)
    context = await browser.new_context()
    page = await context.new_page()

    # next pointing off the site is ignored.
    await page.goto(f"{server}/admin/login?next=https://evil.example/")
    await page.get_by_label("Email address").fill(EDITOR)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
    assert page.url == f"{server}/admin"

    # Admin pages: a 403 page, in HTML.
    for path in ("/admin/keys", "/admin/users"):
        response = await page.goto(server + path)
        assert response is not None
        assert response.status == 403
        assert "admin" in (await page.locator("main").inner_text()).lower()

    # A form from another origin, or without the token: refused, nothing made.
    await page.goto(f"{server}/admin/newsletters/new")
    token = await page.locator("input[name=csrf_token]").first.input_value()
    fields = {
        "name": "Forged",
        "slug": "forged",
        "from_name": "F",
        "from_email": "f@example.org",
        "timezone": "UTC",
    }
    foreign = await page.request.post(
        f"{server}/admin/newsletters/new",
        form={**fields, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
        max_redirects=0,
    )
    assert foreign.status == 403
    tokenless = await page.request.post(
        f"{server}/admin/newsletters/new", form=fields, max_redirects=0
    )
    assert tokenless.status == 403
    assert await session.scalar(select(Newsletter).where(Newsletter.slug == "forged")) is None

    # An idle session ends: the next page is the login page.
    await session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(hours=13)))
    await session.commit()
    await page.goto(f"{server}/admin")
    assert "/admin/login" in page.url

    # Logging out ends the session on the server: its cookie opens nothing afterwards.
    await page.get_by_label("Email address").fill(EDITOR)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{server}/admin")
    cookies = await context.cookies()
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_load_state()
    assert "/admin/login" in page.url
    await context.add_cookies(cookies)  # the old cookie, presented again
    await page.goto(f"{server}/admin")
    assert "/admin/login" in page.url
    issues = (await session.scalars(select(Issue))).all()
    assert issues == []
    await context.close()
