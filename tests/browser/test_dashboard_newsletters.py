"""The newsletter screens in Chromium: overview, create, settings, issues, schedule.

Each page is checked at 1280 and 375 px (screenshots in /tmp/shots/admin/), with axe,
vnu and for requests to other hosts, over a newsletter with issues in several states
and open tracking, beside an empty one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import Delivery, Event, ScheduleTick, Subscription
from tests.browser.dashboard import SHOTS, DashboardBrowser
from tests.browser.test_dashboard_login import dashboard  # noqa: F401
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401
from tests.factories import create_issue, create_newsletter

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


async def _arrange(session: AsyncSession) -> None:
    weekly = await create_newsletter(
        session,
        readers=6,
        track_opens=True,
        schedule_cron="0 9 * * MON",
        timezone="Europe/Berlin",
        auto_send_upcoming=True,
    )
    await create_newsletter(session, slug="quiet", name="The Quiet Quarterly")
    now = utcnow()
    sent = await create_issue(
        session,
        weekly,
        status="sent",
        subject="Issue one: the long road to a better inbox",
        recipients=6,
        started_at=now - timedelta(days=7),
        sent_at=now - timedelta(days=7),
    )
    paused = await create_issue(
        session,
        weekly,
        status="paused",
        subject="Issue two: going out now",
        recipients=6,
        started_at=now - timedelta(minutes=5),
        pause_reason="paused by an editor",
    )
    await create_issue(session, weekly, status="ready", subject="Issue three, ready")
    await create_issue(
        session,
        weekly,
        status="scheduled",
        subject="Issue four, scheduled",
        scheduled_at=now + timedelta(days=20),
    )
    await create_issue(session, weekly, subject="Issue five, a draft collecting stories")
    ids = (await session.execute(select(Subscription.id).order_by(Subscription.id))).scalars()
    for n, subscription_id in enumerate(ids):
        for issue, status in ((sent, "sent"), (paused, "sent" if n < 4 else "cancelled")):
            result = await session.execute(
                insert(Delivery)
                .values(issue_id=issue.id, subscription_id=subscription_id, status=status)
                .returning(Delivery.id)
            )
            if issue is sent and n < 3:
                await session.execute(
                    insert(Event).values(
                        kind="open",
                        issue_id=sent.id,
                        delivery_id=result.scalar_one(),
                        subscription_id=subscription_id,
                    )
                )
    await session.execute(
        insert(ScheduleTick).values(
            newsletter_id=weekly.id,
            tick_at=now - timedelta(days=7),
            outcome="sent",
            issue_id=sent.id,
        )
    )
    await session.execute(
        insert(ScheduleTick).values(
            newsletter_id=weekly.id,
            tick_at=now - timedelta(days=14),
            outcome="skipped",
            detail="nothing ready; the upcoming draft #1 has no stories",
        )
    )
    await session.commit()


async def test_every_newsletter_screen_looks_right_and_validates(
    dashboard: DashboardBrowser,  # noqa: F811
    session: AsyncSession,
) -> None:
    empty = await dashboard.check("/admin", "newsletters-home-empty")
    assert await empty.get_by_text("No newsletters yet").is_visible()
    await _arrange(session)

    home = await dashboard.check("/admin", "newsletters-home")
    assert await home.get_by_text("Issue two: going out now").is_visible()
    assert await home.locator("progress").count() == 1

    new = await dashboard.check("/admin/newsletters/new", "newsletters-new")
    await new.get_by_label("Name", exact=True).fill("The Friday Letter")
    await new.get_by_label("Slug").fill("Friday Letter")
    await new.get_by_label("From name").fill("Friday Desk")
    await new.get_by_label("From address").fill("desk@friday.example.com")
    await new.get_by_role("button", name="Create newsletter").click()
    await new.wait_for_load_state()
    assert await new.locator("#slug-error").is_visible()
    await new.screenshot(path=str(SHOTS / "newsletters-new-errors-1280.png"), full_page=True)
    dashboard.documents["newsletters-new-errors"] = await new.content()

    settings = await dashboard.check("/admin/newsletters/weekly", "newsletters-settings")
    assert await settings.locator(".next-sends li").count() == 5
    assert "newsletters/weekly/subscribe" in await settings.locator("pre code").inner_text()

    issues = await dashboard.check("/admin/newsletters/weekly/issues", "newsletters-issues")
    assert await issues.locator("tbody tr").count() == 5
    assert await issues.get_by_role("columnheader", name="Opens").is_visible()

    await dashboard.check("/admin/newsletters/quiet/issues", "newsletters-issues-empty")
    schedule = await dashboard.check("/admin/newsletters/weekly/schedule", "newsletters-schedule")
    assert await schedule.get_by_text("nothing ready; the upcoming draft").is_visible()
    await dashboard.check("/admin/newsletters/quiet/schedule", "newsletters-schedule-empty")

    problems = dashboard.validate()
    assert problems == [], "\n".join(problems)


async def _open(browsing: DashboardBrowser, session: AsyncSession, path: str) -> Any:
    """A new page at `path` over the arranged newsletters."""
    await _arrange(session)
    context: Any = await browsing.context()
    page = await context.new_page()
    await page.goto(browsing.base_url + path)
    return page


async def test_duplicate_and_new_issue_lead_to_the_new_draft(
    dashboard: DashboardBrowser,  # noqa: F811
    session: AsyncSession,
) -> None:
    page = await _open(dashboard, session, "/admin/newsletters/weekly/issues")
    await page.get_by_role("button", name="Duplicate issue 1").click()
    await page.wait_for_url("**/admin/issues/*")
    await page.goto(dashboard.base_url + "/admin/newsletters/weekly/issues")
    assert await page.locator("tbody tr").count() == 6
    first_row = page.locator("tbody tr").first
    assert "Issue one: the long road" in await first_row.inner_text()
    await page.get_by_role("button", name="New issue").click()
    await page.wait_for_url("**/admin/issues/*")
    await page.close()


async def test_the_sending_panel_updates_without_reloading(
    dashboard: DashboardBrowser,  # noqa: F811
    session: AsyncSession,
) -> None:
    page = await _open(dashboard, session, "/admin")
    panel = page.locator("#sending-now-panel")
    assert "4 sent of 6" in await panel.inner_text()
    await page.evaluate("window.notReloaded = true")
    await session.execute(
        update(Delivery).where(Delivery.status == "cancelled").values(status="sent")
    )
    await session.commit()
    await panel.get_by_text("6 sent of 6").wait_for(timeout=12_000)
    assert await page.evaluate("window.notReloaded === true")
    await page.close()
