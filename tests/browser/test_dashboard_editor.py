"""The issue editor in Chromium: autosave as one types, the preview follows, both widths,
the send confirmation; looks, axe, vnu and no foreign hosts."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from tests.browser.dashboard import SHOTS, DashboardBrowser
from tests.browser.test_dashboard_login import dashboard  # noqa: F401
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401
from tests.factories import create_issue, create_newsletter, create_readers
from tests.validators import axe_violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

TYPED = " Typed in the browser, saved by itself."


async def _issue(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(
            session, slug="weekly", double_opt_in=False, timezone="Europe/Berlin"
        )
        await create_readers(session, newsletter, 12)
        # No remote images: the preview shows an editor's images from anywhere, but a
        # test machine reaches no other host and the check counts every request to one.
        plain = [{"image_url": None, "image_alt": None}] * 2
        issue = await create_issue(session, newsletter, stories=2, story_overrides=plain)
        return issue.id


async def _frame_text(page: Any) -> str:
    body = page.frame_locator("#preview-frames iframe").locator("body")
    return str(await body.inner_text())


async def test_the_editor_saves_as_one_types_and_the_preview_follows(
    dashboard: DashboardBrowser,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    issue_id = await _issue(sessionmaker)
    page = await dashboard.check(f"/admin/issues/{issue_id}", "editor")
    frame = page.locator("#preview-frames iframe")
    assert await frame.get_attribute("sandbox") == ""
    before = await frame.get_attribute("src")
    assert TYPED.strip() not in await _frame_text(page)

    intro = page.get_by_label("Intro (Markdown)")
    await intro.click()
    await intro.press("End")
    await intro.press_sequentially(TYPED, delay=15)
    status = page.locator("#autosave-status")
    await status.filter(has_text="Saved").wait_for(timeout=15_000)
    assert (await status.inner_text()).startswith("Saved ")

    await page.wait_for_function(
        "src => document.querySelector('#preview-frames iframe').getAttribute('src') !== src",
        arg=before,
        timeout=15_000,
    )
    body = page.frame_locator("#preview-frames iframe").locator("body")
    await expect(body).to_contain_text(TYPED.strip(), timeout=15_000)
    await page.screenshot(path=str(SHOTS / "editor-autosaved-1280.png"), full_page=True)

    # The phone width: a toggle that needs no script.
    await page.get_by_text("375 px", exact=True).click()
    box = await frame.bounding_box()
    assert box is not None
    assert round(box["width"]) == 375
    await page.locator(".preview-pane").screenshot(path=str(SHOTS / "editor-preview-375.png"))

    # The phone layout in pieces a person can look at (the full page is long).
    narrow = await (await dashboard.context(375, 812)).new_page()
    await narrow.goto(f"{dashboard.base_url}/admin/issues/{issue_id}")
    height = await narrow.evaluate("document.documentElement.scrollHeight")
    for n, top in enumerate(range(0, height, 1600)):
        clip = {"x": 0, "y": top, "width": 375, "height": min(1600, height - top)}
        await narrow.screenshot(
            path=str(SHOTS / f"editor-375-part{n}.png"), full_page=True, clip=clip
        )
    pane = narrow.locator(".preview-pane")
    await pane.scroll_into_view_if_needed()
    await expect(narrow.frame_locator("#preview-frames iframe").locator("body")).to_contain_text(
        TYPED.strip()
    )
    await pane.screenshot(path=str(SHOTS / "editor-375-preview.png"))
    await narrow.close()

    confirm = await dashboard.check(f"/admin/issues/{issue_id}/send", "editor-send")
    heading = await confirm.locator("h1").inner_text()
    assert heading.startswith("Send '")
    assert "to 12 subscribers of" in heading

    # Bad input comes back beside its field (the Save button, as without JavaScript).
    await page.get_by_label("Link").first.fill("not a web address")
    await page.get_by_role("button", name="Save").first.click()
    await page.wait_for_load_state("load")
    error = page.locator("#story-0-url-error")
    await expect(error).to_contain_text("http:// or https://")
    await page.screenshot(path=str(SHOTS / "editor-error-1280.png"), full_page=True)
    assert await axe_violations(page) == []
    assert dashboard.validate() == []
