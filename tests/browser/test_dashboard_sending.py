"""The send view and the report in Chromium: counts that move without a reload, controls
that change with the status, the report's tables; both widths, axe, vnu and no foreign
hosts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import Delivery
from app.settings import Settings
from tests.admin.sends import add_clicks, set_issue_status, set_outcomes, start_issue
from tests.browser.dashboard import SHOTS, DashboardBrowser
from tests.browser.test_dashboard_login import dashboard  # noqa: F401
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

Maker = async_sessionmaker[AsyncSession]


async def _hold_queue(sessionmaker: Maker, issue_id: int) -> None:
    """The running worker leaves the queued rows alone for an hour: the test moves them."""
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.status == "queued")
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )


def _stat(page: Any, name: str) -> Any:
    label = page.locator("dt", has_text=re.compile(rf"^{name}$"))
    return page.locator("#send-progress .stat").filter(has=label).locator("dd")


async def test_the_send_view_updates_itself_and_the_report_reads_well(
    dashboard: DashboardBrowser,  # noqa: F811
    sessionmaker: Maker,
    settings: Settings,
) -> None:
    issue_id, _ = await start_issue(
        sessionmaker,
        settings,
        40,
        timezone="Europe/Berlin",
        track_opens=True,
        track_clicks=True,
    )
    await _hold_queue(sessionmaker, issue_id)
    await set_outcomes(sessionmaker, issue_id, {"sent": 10, "failed": 1})
    page = await dashboard.check(f"/admin/issues/{issue_id}", "send-view")
    assert await _stat(page, "Sent").inner_text() == "10"
    assert await _stat(page, "Queued").inner_text() == "29"
    await page.evaluate("window.notReloaded = true")

    # The engine's progress, written between two polls, reaches the open page.
    await set_outcomes(sessionmaker, issue_id, {"sent": 15, "bounced": 2})
    await _stat(page, "Sent").filter(has_text="25").wait_for(timeout=10_000)
    assert await _stat(page, "Bounced").inner_text() == "2"
    assert await _stat(page, "Queued").inner_text() == "12"
    assert "70.0%" in await page.locator(".send-bar-label").inner_text()
    await set_outcomes(sessionmaker, issue_id, {"sent": 4})
    await _stat(page, "Sent").filter(has_text="29").wait_for(timeout=10_000)
    rate = await _stat(page, "Messages/s").inner_text()
    assert re.fullmatch(r"\d+(\.\d)?", rate), rate  # a number after two samples
    assert await page.evaluate("window.notReloaded === true")

    # The send ends: the next poll brings the controls and links that fit "sent".
    await set_outcomes(sessionmaker, issue_id, {"sent": 8})
    await set_issue_status(sessionmaker, issue_id, "sent")
    await page.locator("#send-progress .badge-sent").wait_for(timeout=10_000)
    await page.get_by_role("link", name="Web version").wait_for(timeout=5_000)
    assert await page.evaluate("window.notReloaded === true")
    assert await page.get_by_role("button", name="Pause").count() == 0
    assert await page.get_by_role("button", name="Resend failed deliveries").count() == 1
    assert await page.locator("#send-progress[data-hx-get]").count() == 0
    assert await page.get_by_role("link", name="Web version").count() == 1
    await page.close()

    await add_clicks(sessionmaker, issue_id, "https://example.org/stories/1", readers=6, each=2)
    await add_clicks(sessionmaker, issue_id, "https://example.org/stories/2", readers=2, each=1)
    await dashboard.check(f"/admin/issues/{issue_id}", "send-view-sent")
    report = await dashboard.check(f"/admin/issues/{issue_id}/report", "report")
    assert await report.locator("h1").inner_text() == "The week in review"
    assert await report.get_by_role("link", name="https://example.org/stories/1").count() == 1
    failed = await dashboard.check(
        f"/admin/issues/{issue_id}/report?status=failed", "report-failed"
    )
    assert "451 4.3.0" in await failed.locator("table.report-deliveries").inner_text()
    await _phone_views(dashboard, f"/admin/issues/{issue_id}/report")
    assert dashboard.validate() == []


async def _phone_views(dashboard: DashboardBrowser, path: str) -> None:  # noqa: F811
    """The report at 375 px a screen at a time (the full page is too tall to look at)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = await (await dashboard.context(375, 812)).new_page()
    await page.goto(dashboard.base_url + path)
    for n, heading in enumerate(("Outcomes", "Clicks per link", "Deliveries")):
        await page.get_by_role("heading", name=heading).evaluate("e => e.scrollIntoView()")
        await page.screenshot(path=str(SHOTS / f"report-375-part{n + 1}.png"))
    await page.close()


async def test_a_paused_send(
    dashboard: DashboardBrowser,  # noqa: F811
    sessionmaker: Maker,
    settings: Settings,
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 12)
    await _hold_queue(sessionmaker, issue_id)
    await set_outcomes(sessionmaker, issue_id, {"sent": 5, "failed": 2})
    page = await dashboard.check(f"/admin/issues/{issue_id}", "send-view")
    await page.get_by_role("button", name="Pause").click()
    await page.wait_for_url(re.compile(rf"/admin/issues/{issue_id}$"))
    assert "Sending paused" in await page.locator(".flash").inner_text()
    await dashboard.check(f"/admin/issues/{issue_id}", "send-view-paused")
    await page.locator("summary", has_text="Cancel send").click()
    await page.get_by_role("button", name="Yes, cancel the send").click()
    await page.wait_for_url(re.compile(rf"/admin/issues/{issue_id}$"))
    assert "Send cancelled: 5 queued" in await page.locator(".flash").inner_text()
    assert dashboard.validate() == []
