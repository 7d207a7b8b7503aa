"""`broadsheet dev`'s mail catcher in Chromium: a caught confirmation, its links, its frame.

`broadsheet dev` runs as a real process in an empty directory (its own SQLite database
and mail folder under ./var/), exactly as a first-time user starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.test_subscribe_flow import CHROMIUM, CHROMIUM_ARGS, SHOTS
from tests.conftest import ROOT
from tests.smtp import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`broadsheet dev` in an empty directory: (its URL, that directory)."""
    port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    env.update(PYTHONPATH=str(ROOT), BROADSHEET_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "app.cli", "dev", "--port", str(port)]
    command += ["--smtp-port", str(smtp_port)]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                key_file = tmp_path / "var" / "dev-admin-key"
                ready = httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
                if ready and key_file.is_file():
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("broadsheet dev did not start")
            time.sleep(0.2)
        yield base_url, tmp_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _catch_a_confirmation(base_url: str, directory: Path) -> str:
    """Make a newsletter, subscribe to it; the path of the caught confirmation's page."""
    key = (directory / "var" / "dev-admin-key").read_text().strip()
    created = httpx.post(
        f"{base_url}/api/v1/newsletters",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "slug": "weekly",
            "name": "The Weekly",
            "description": "Five links, every Monday.",
            "from_name": "The Weekly",
            "from_email": "news@example.com",
            "postal_address": "1 Main Street, Springfield",
        },
    )
    assert created.status_code == 201, created.text
    subscribed = httpx.post(
        f"{base_url}/newsletters/weekly/subscribe", json={"email": "reader@example.org"}
    )
    assert subscribed.status_code == 202, subscribed.text
    caught = directory / "var" / "mail" / "000001.eml"
    deadline = time.monotonic() + 30
    while not caught.is_file():
        assert time.monotonic() < deadline, "the confirmation was not caught"
        time.sleep(0.1)
    return f"{base_url}/_dev/mail/000001"


FRAME_FITS = """() => {
    const frame = document.querySelector("iframe.mail-frame");
    const doc = frame && frame.contentDocument;
    if (!doc || !doc.body || doc.URL !== "about:srcdoc") return false;
    return frame.clientHeight >= doc.documentElement.scrollHeight
        && doc.documentElement.scrollHeight > 300;
}"""


async def test_caught_email_links_open_in_a_new_tab_and_its_frame_fits_the_email(
    dev_server: tuple[str, Path],
) -> None:
    from playwright.async_api import async_playwright

    base_url, directory = dev_server
    mail_page = _catch_a_confirmation(base_url, directory)
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            for width, height in ((1280, 900), (375, 812)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                await page.goto(mail_page)
                # The frame is as tall as the email: no scrollbar inside it.
                await page.wait_for_function(FRAME_FITS)
                sizes = await page.evaluate(
                    """() => {
                        const frame = document.querySelector("iframe.mail-frame");
                        const root = frame.contentDocument.documentElement;
                        return [frame.clientHeight, root.scrollHeight, root.clientHeight];
                    }"""
                )
                frame_height, email_height, visible = sizes
                assert frame_height >= email_height
                assert visible >= email_height  # nothing of the email is scrolled away
                await page.screenshot(path=str(SHOTS / f"dev-mail-{width}.png"), full_page=True)

                # Its confirm link opens the confirm page in a tab of its own.
                link = page.frame_locator("iframe.mail-frame").get_by_role(
                    "link", name="Confirm my subscription"
                )
                async with context.expect_page() as opened:
                    await link.click()
                confirm_page = await opened.value
                await confirm_page.wait_for_load_state()
                assert "/confirm/" in confirm_page.url
                assert "Confirm your subscription" in await confirm_page.locator("h1").inner_text()
                assert page.url == mail_page  # the catcher stays where it was
                await context.close()
        finally:
            await browser.close()
