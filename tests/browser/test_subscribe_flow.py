"""A real browser (headless Chromium, JavaScript off) through subscribe, confirm, unsubscribe.

The API and the worker run as real processes (`broadsheet serve`, `broadsheet worker`)
against the test database; the confirmation travels over SMTP to the test's mail server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.links import unsubscribe_url
from app.kit.tokens import Signer
from tests.conftest import ROOT, SECRET
from tests.factories import confirm_link, create_gazette, subscription_of, wait_healthy
from tests.smtp import MailSink, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path("/tmp/shots")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def server(database_url: str, smtp_server: tuple[MailSink, int]) -> Iterator[str]:
    """`broadsheet serve` and `broadsheet worker` on the test database; yields the base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BROADSHEET_DATABASE_URL": database_url,
        "BROADSHEET_SMTP_URL": f"smtp://127.0.0.1:{smtp_server[1]}",
        "BROADSHEET_BASE_URL": base_url,
        "BROADSHEET_SECRET_KEY": SECRET,
        "BROADSHEET_RETRY_BACKOFF_SECONDS": "0.5",
        "BROADSHEET_LOG_LEVEL": "WARNING",
    }
    commands = [
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        [sys.executable, "-m", "app.cli", "worker", "--no-scheduler"],
    ]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for command in commands
    ]
    try:
        wait_healthy(f"{base_url}/healthz", 30, processes=processes)
        yield base_url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def wait_for_mail(mailbox: MailSink, address: str, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mailbox.to(address)
        if found:
            return found[0].data
        await asyncio.sleep(0.1)
    raise AssertionError(f"no confirmation for {address} within {timeout}s")


async def test_a_reader_subscribes_confirms_and_unsubscribes_in_a_real_browser(
    server: str, browser: object, session: AsyncSession, mailbox: MailSink
) -> None:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    newsletter = await create_gazette(
        session,
        description="Five stories worth your time, every Monday morning. Hand-picked, no ads.",
        from_name="Ada at the Gazette",
        postal_address="1 Main Street\nSpringfield",
    )
    subscribe_url = f"{server}/newsletters/{newsletter.slug}/subscribe"

    # Screenshots of the form on a desktop and on a phone.
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (375, 812)):
        context = await browser.new_context(viewport={"width": width, "height": height})
        shot_page = await context.new_page()
        await shot_page.goto(subscribe_url)
        await shot_page.screenshot(path=str(SHOTS / f"subscribe-{width}.png"), full_page=True)
        # Nothing runs off the side of a phone screen.
        overflow = await shot_page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        assert overflow is False, f"horizontal scrolling at {width}px"
        await context.close()

    # The whole flow with JavaScript off: the pages must not need it.
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    response = await page.goto(subscribe_url)
    assert response is not None
    assert response.status == 200
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.locator("h1").count() == 1

    # Keyboard order: email, name, then the button; the honeypot is never reached.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "email"
    outline = await page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert outline != "none"  # a visible focus ring
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "name"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.type") == "submit"

    await page.get_by_label("Email address").fill("browser.reader@example.com")
    await page.get_by_label("Name").fill("Bea Browser")
    await page.get_by_role("button", name="Subscribe").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Check your inbox"

    message = await wait_for_mail(mailbox, "browser.reader@example.com")
    link = confirm_link(message)
    assert link.startswith(f"{server}/confirm/")
    await page.goto(link)
    assert "Confirm your subscription" in await page.locator("h1").inner_text()
    waiting = await subscription_of(session, "browser.reader@example.com")
    assert waiting is not None
    assert waiting.status == "pending"  # opening the link confirms nothing
    for width, height in ((1280, 900), (375, 812)):
        phone = await browser.new_context(viewport={"width": width, "height": height})
        shot_page = await phone.new_page()
        await shot_page.goto(link)
        await shot_page.screenshot(path=str(SHOTS / f"confirm-{width}.png"), full_page=True)
        await phone.close()
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_load_state()
    assert "subscribed" in (await page.locator("h1").inner_text()).lower()
    assert page.url == link  # answered in place
    subscription = await subscription_of(session, "browser.reader@example.com")
    assert subscription is not None
    assert subscription.status == "active"
    assert subscription.confirmed_ip == "127.0.0.1"
    assert subscription.user_agent is not None
    assert "Chrome" in subscription.user_agent
    assert subscription.confirmed_user_agent is not None
    assert "Chrome" in subscription.confirmed_user_agent

    # The unsubscribe link every issue carries: a page with one button.
    url = unsubscribe_url(server, Signer(SECRET.encode()), subscription.id)
    await page.goto(url)
    assert "Unsubscribe from The Weekly Gazette" in await page.locator("h1").inner_text()
    still = await subscription_of(session, "browser.reader@example.com")
    assert still is not None
    assert still.status == "active"  # opening the page changes nothing
    await page.get_by_role("button", name="Unsubscribe").click()
    await page.wait_for_load_state()
    assert "unsubscribed" in (await page.locator("h1").inner_text()).lower()
    assert page.url == url  # answered in place, never a redirect
    await page.screenshot(path=str(SHOTS / "unsubscribed-1280.png"))
    left = await subscription_of(session, "browser.reader@example.com")
    assert left is not None
    assert left.status == "unsubscribed"
    assert left.unsubscribed_at is not None
    await context.close()
