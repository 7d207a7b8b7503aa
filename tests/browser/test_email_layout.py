"""Emails on a phone, in headless Chromium: no sideways scrolling, standards mode, and a
preheader nobody sees.

The HTML comes from the paths that send it: the editor's preview of a ten-story issue
(with a 120-character token and a 120-character URL in a story) and the confirmation
email a subscribe writes to the outbox. Every request the page would make (the story
images) is refused: only the document itself is loaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import create_newsletter
from tests.rendering.emails import LONG_TOKEN, confirmation_email_html, issue_email_html

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/shots")
PREHEADER = "Five minutes of reading for your Monday"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def _layout(browser: Any, html: str, width: int, shot: str) -> dict[str, Any]:
    """Open `html` at `width` px; what the reader gets: widths, mode and visible text."""
    page = await browser.new_page(viewport={"width": width, "height": 900})
    try:
        await page.route("**/*", lambda route: route.abort())
        await page.set_content(html)
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{shot}-{width}.png"), full_page=True)
        result: dict[str, Any] = await page.evaluate(
            """() => ({
                scrollWidth: document.documentElement.scrollWidth,
                compatMode: document.compatMode,
                text: document.body.innerText,
                preheader: document.querySelector('.preheader').textContent.trim(),
                preheaderHeight: document.querySelector('.preheader').offsetHeight,
            })"""
        )
        return result
    finally:
        await page.close()


async def test_the_issue_email_with_long_words_fits_a_phone_and_a_600_px_pane(
    browser: Any, client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str]
) -> None:
    paper = await create_newsletter(session)
    html = await issue_email_html(client, session, editor_headers, paper)

    for width in (375, 600, 1280):
        seen = await _layout(browser, html, width, "email-issue")
        assert seen["compatMode"] == "CSS1Compat", width
        assert seen["scrollWidth"] <= width, width
        assert LONG_TOKEN in seen["text"]


async def test_the_confirmation_email_fits_a_phone(
    browser: Any, client: AsyncClient, session: AsyncSession
) -> None:
    paper = await create_newsletter(session)
    html = await confirmation_email_html(client, session, paper)

    for width in (375, 1280):
        seen = await _layout(browser, html, width, "email-confirmation")
        assert seen["compatMode"] == "CSS1Compat", width
        assert seen["scrollWidth"] <= width, width
        assert "Please confirm your subscription" in seen["text"]


async def test_neither_email_shows_its_preheader(
    browser: Any, client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str]
) -> None:
    paper = await create_newsletter(session)
    issue = await _layout(
        browser, await issue_email_html(client, session, editor_headers, paper), 375, "preheader"
    )
    confirmation = await _layout(
        browser, await confirmation_email_html(client, session, paper), 375, "preheader"
    )

    assert issue["preheader"].startswith(PREHEADER)
    for seen in (issue, confirmation):
        assert seen["preheader"]
        assert seen["preheaderHeight"] == 0
        assert seen["preheader"][:30] not in seen["text"]
