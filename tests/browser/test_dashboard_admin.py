"""The admin screens in Chromium: API keys (a new key shown once), users, the audit log,
and the password reset pages; an editor gets the 403 page. Looks, axe, vnu, overflow."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.keys.service import create_key, revoke_key
from app.kit.db import unit_of_work
from app.kit.tokens import Signer
from app.models import Role
from app.settings import load_settings
from tests.admin.support import make_user
from tests.browser.dashboard import SHOTS, WIDTHS, DashboardBrowser
from tests.browser.test_dashboard_login import dashboard  # noqa: F401
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401
from tests.conftest import SECRET
from tests.validators import axe_violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


async def _arrange(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    """Keys (one revoked), a second user, audit rows; (the writer's id, a reset token)."""
    await make_user(sessionmaker, "writer.with.a.rather.long.address@example.com")
    async with unit_of_work(sessionmaker) as session:
        await create_key(session, name="CMS on the website", role=Role.editor)
        old, _ = await create_key(session, name="old cron job", role=Role.admin)
        await revoke_key(session, old)
        for n in range(3):
            await accounts.audit(session, "key CMS on the website", "issue.send", f"issue {n}")
        await accounts.audit(session, "user chief@example.com", "key.revoke", "key 2 old cron")
        writer = await accounts.get_user(session, "writer.with.a.rather.long.address@example.com")
        settings = load_settings(secret_key=SECRET, _env_file=None)
        token = accounts.reset_token(Signer(settings.secret, settings.previous_secrets), writer)
        return writer.id, token


async def _submitted(dashboard: DashboardBrowser, page: Any, name: str) -> None:  # noqa: F811
    """Check a page reached by a form (a POST answer) like `check` does a GET."""
    await page.wait_for_load_state("networkidle")
    width = page.viewport_size["width"]
    await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    dashboard.documents[name] = await page.content()
    for violation in await axe_violations(page):
        dashboard.problems.append(f"{name}: axe {violation}")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    if overflow:
        dashboard.problems.append(f"{name}: horizontal scrolling at {width}px")


async def test_the_admin_screens(
    dashboard: DashboardBrowser,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    writer_id, token = await _arrange(sessionmaker)
    keys = await dashboard.check("/admin/keys", "keys")
    assert await keys.locator("h1").inner_text() == "API keys"
    assert await keys.get_by_text("revoked", exact=True).count() == 1

    # A new key: shown once, in the answer to the form.
    for width, height in WIDTHS:
        context = await dashboard.context(width, height)
        page = await context.new_page()
        await page.goto(f"{dashboard.base_url}/admin/keys")
        await page.get_by_label("Name").fill(f"newsletter CMS {width}")
        await page.get_by_label("Role").select_option("admin")
        await page.get_by_role("button", name="Create key").click()
        await page.wait_for_url(f"{dashboard.base_url}/admin/keys")
        value = await page.locator("#new-key").inner_text()
        assert value.startswith("bs_")
        assert await page.get_by_text("it will not be shown again").count() == 1
        await _submitted(dashboard, page, "keys-created")
        await page.goto(f"{dashboard.base_url}/admin/keys")  # a GET: the key is gone
        assert await page.locator("#new-key").count() == 0
        await page.close()

    users = await dashboard.check("/admin/users", "users")
    assert await users.locator("h1").inner_text() == "Users"
    await dashboard.check(f"/admin/users/{writer_id}", "user")
    await dashboard.check("/admin/audit", "audit")
    await dashboard.check("/admin/password/forgot", "password-forgot")
    await dashboard.check(f"/admin/password/reset/{token}", "password-reset")
    await dashboard.check("/admin/password/reset/not.valid", "password-invalid")
    expected = "password-invalid: /admin/password/reset/not.valid answered 400"
    dashboard.problems = [found for found in dashboard.problems if found != expected]

    # The forgot form's answer, logged out.
    for width, height in WIDTHS:
        context = await dashboard.browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=True
        )
        page = await context.new_page()
        await page.goto(f"{dashboard.base_url}/admin/login")
        await page.get_by_role("link", name="Forgot your password?").click()
        await page.get_by_label("Email address").fill("nobody@example.com")
        await page.get_by_role("button", name="Email me a link").click()
        assert await page.get_by_text("If an account exists for").count() == 1
        await _submitted(dashboard, page, "password-sent")
        await context.close()
    problems = dashboard.validate()
    assert problems == [], "\n".join(problems)


async def test_an_editor_gets_the_403_page(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_user(sessionmaker, "writer@example.com", Role.editor)
    viewer = DashboardBrowser(browser, server, "writer@example.com")
    try:
        context = await viewer.context()
        page = await context.new_page()
        home = await page.goto(f"{server}/admin")
        assert home is not None
        assert await page.get_by_role("link", name="API keys").count() == 0
        for path in ("/admin/keys", "/admin/users"):
            response = await page.goto(server + path)
            assert response is not None
            assert response.status == 403
            assert response.headers["content-type"].startswith("text/html")
            assert await page.get_by_text("Only an admin can open this page.").count() == 1
        await page.screenshot(path=str(SHOTS / "editor-403-1280.png"), full_page=True)
    finally:
        await viewer.close()
