"""The login page and the empty dashboard in Chromium: looks, axe, vnu, no foreign hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Role
from tests.admin.support import PASSWORD, make_user
from tests.browser.dashboard import SHOTS, DashboardBrowser
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401
from tests.validators import axe_violations, vnu_check

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def dashboard(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[DashboardBrowser]:
    """An admin logged in to the dashboard of a real `broadsheet serve`."""
    await make_user(sessionmaker, "chief@example.com", Role.admin)
    viewer = DashboardBrowser(browser, server, "chief@example.com")
    yield viewer
    await viewer.close()


async def test_the_login_page_looks_right_and_validates(browser: Any, server: str) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 375):
        context = await browser.new_context(
            viewport={"width": width, "height": 800}, bypass_csp=True
        )
        page = await context.new_page()
        response = await page.goto(f"{server}/admin/issues/1")
        assert response is not None
        assert page.url.startswith(f"{server}/admin/login?next=")
        await page.screenshot(path=str(SHOTS / f"login-{width}.png"), full_page=True)
        assert not await page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        assert await axe_violations(page) == []
        if width == 1280:
            assert vnu_check({"login": await response.text()}) == []
        await context.close()


async def test_the_empty_dashboard(dashboard: DashboardBrowser) -> None:
    page = await dashboard.check("/admin", "home-empty")
    assert await page.locator("h1").inner_text() == "Newsletters"
    assert dashboard.validate() == []


async def test_the_dashboard_works_by_keyboard(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Log in and reach the first action with the keyboard alone, past a skip link."""
    await make_user(sessionmaker, "keys@example.com", Role.editor)
    context = await browser.new_context(viewport={"width": 375, "height": 812})
    page = await context.new_page()
    await page.goto(f"{server}/admin/login")
    # The address field has the focus on arrival; Tab leads on to the password.
    await page.keyboard.type("keys@example.com")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{server}/admin")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "New newsletter"
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{server}/admin/newsletters/new")
    await context.close()
