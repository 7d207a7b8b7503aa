"""The subscribers screens in Chromium: the list, a search, a subscriber's page, the add
form and the import with its progress bar and per-line report.

Each page is checked at 1280 and 375 px (screenshots in /tmp/shots/admin/), with axe,
vnu and for requests to other hosts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Subscription
from tests.admin.test_subscribers_pages import deliver
from tests.browser.dashboard import SHOTS, DashboardBrowser
from tests.browser.test_dashboard_login import dashboard  # noqa: F401
from tests.browser.test_subscribe_flow import CHROMIUM, browser, server  # noqa: F401
from tests.factories import create_issue, create_newsletter, create_readers, create_subscription
from tests.validators import axe_violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

BASE = "/admin/newsletters/weekly/subscribers"
CSV = (
    "email,name,city\n"
    "new.reader@example.com,New Reader,Lisbon\n"
    "broken-address,Nobody,\n"
    "another.one@example.org,,Oslo\n"
    "bad@,Also Bad,\n"
)


async def _arrange(session: AsyncSession) -> Subscription:
    newsletter = await create_newsletter(session, timezone="Europe/Berlin")
    await create_newsletter(session, slug="quiet", name="The Quiet Quarterly")
    subscription = await create_subscription(
        session,
        newsletter,
        "ada.lovelace@analytical.example",
        "Ada Lovelace",
        attributes={"city": "London", "plan": "supporter"},
    )
    subscription.page = "https://example.com/newsletter"
    subscription.ip = "203.0.113.7"
    subscription.user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120"
    await create_readers(session, newsletter, 60)
    await create_readers(session, newsletter, 3, status="unsubscribed", prefix="gone")
    issue = await create_issue(session, newsletter, status="sent", subject="Engines of thought")
    await deliver(
        session,
        issue,
        subscription,
        "250 2.0.0 Ok: queued as 4F2A1",
        ("open", None),
        ("click", "https://example.org/engines"),
    )
    await session.commit()
    return subscription


async def test_the_subscribers_screens(
    dashboard: DashboardBrowser,  # noqa: F811
    session: AsyncSession,
    tmp_path: Path,
) -> None:
    subscription = await _arrange(session)

    page = await dashboard.check(BASE, "subscribers-list")
    assert await page.locator("table.subs-table tbody tr").count() == 50
    assert await page.get_by_role("link", name="Next →").count() == 1

    page = await dashboard.check(f"{BASE}?q=lovelace", "subscribers-search")
    rows = page.locator("table.subs-table tbody tr")
    assert await rows.count() == 1
    assert "ada.lovelace@analytical.example" in await rows.first.inner_text()

    # Typing in the search box filters without a reload (htmx), and the address follows.
    await page.goto(dashboard.base_url + BASE)
    await page.get_by_label("Search email or name").fill("reader1")
    await page.wait_for_url("**q=reader1**")
    assert await page.locator("table.subs-table tbody tr").count() == 11

    page = await dashboard.check(f"{BASE}/{subscription.id}", "subscriber-page")
    text = await page.locator("main").inner_text()
    assert "203.0.113.7" in text
    assert "https://example.org/engines" in text
    assert "250 2.0.0 Ok: queued as 4F2A1" in text
    assert await page.get_by_text("Erase person").count() == 1  # the viewer is an admin

    await dashboard.check(f"{BASE}/new", "subscriber-add")
    await dashboard.check("/admin/newsletters/quiet/subscribers", "subscribers-empty")

    page = await dashboard.check(f"{BASE}/import", "subscribers-import")
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(CSV, encoding="utf-8")
    await page.set_input_files("#import-file", str(csv_file))
    await page.get_by_role("button", name="Import").click()
    report = page.locator("#import-result")
    await report.get_by_text("Imported readers.csv").wait_for()
    assert "new.reader@example.com" not in await report.inner_text()
    lines = await report.locator("tbody tr").all_inner_texts()
    assert [line.split("\t")[0] for line in lines] == ["3", "5"]
    assert await page.locator(".subs-progress").is_hidden()
    assert await axe_violations(page) == []
    for width in (1280, 375):
        await page.set_viewport_size({"width": width, "height": 900})
        shot = SHOTS / f"subscribers-import-report-{width}.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert not await page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    # The same form without JavaScript: a plain POST answers the page with the report.
    token = await page.locator("input[name=csrf_token]").first.input_value()
    plain = await page.context.request.post(
        f"{dashboard.base_url}{BASE}/import",
        multipart={
            "csrf_token": token,
            "file": {"name": "readers.csv", "mimeType": "text/csv", "buffer": CSV.encode()},
        },
        headers={"Origin": dashboard.base_url},
    )
    assert plain.status == 200
    dashboard.documents["subscribers-import-report"] = await plain.text()
    assert "Imported readers.csv" in dashboard.documents["subscribers-import-report"]

    assert dashboard.validate() == []
