"""The send view (live progress and controls) and the report of an issue (SPEC section 11)."""

from __future__ import annotations

import re
import time

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.admin.progress import Sample, duration, measure
from app.models import AuditEvent, Issue
from app.settings import Settings
from tests.admin.sends import (
    add_clicks,
    issue_page,
    set_issue_status,
    set_outcomes,
    start_issue,
    status_of,
)
from tests.admin.support import ORIGIN, Editor
from tests.delivery.conftest import running_worker, wait_until
from tests.factories import delivery_statuses

Maker = async_sessionmaker[AsyncSession]
POLL = 'data-hx-trigger="every 2s"'


def _stat(html: str, name: str) -> str:
    found = re.search(rf"<dt>{name}</dt><dd>([^<]*)<", html)
    assert found is not None, f"no {name} on the page"
    return found.group(1)


async def _audit(sessionmaker: Maker) -> list[tuple[str, str, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows.all()]


# -- the send view ----------------------------------------------------------------------


async def test_a_sending_issue_shows_its_progress_polling_and_controls(
    app: FastAPI, editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 10)
    await set_outcomes(sessionmaker, issue_id, {"sent": 4, "failed": 1, "bounced": 1})
    page = await editor.client.get(issue_page(app).format(issue_id=issue_id))
    assert page.status_code == 200, page.text
    html = page.text
    assert "The week in review" in html
    assert 'class="badge badge-sending"' in html
    stats = {name: _stat(html, name) for name in ("Sent", "Failed", "Bounced", "Queued")}
    assert stats == {"Sent": "4", "Failed": "1", "Bounced": "1", "Queued": "4"}
    assert '<progress max="10" value="6"' in html
    assert "60.0%" in html
    assert (
        f'data-hx-get="/admin/issues/{issue_id}/progress?status=sending&amp;done=6&amp;at=' in html
    )
    assert POLL in html
    assert 'data-hx-swap="outerHTML"' in html
    assert f'href="/admin/issues/{issue_id}?status=sending&amp;done=6&amp;at=' in html  # Refresh
    assert f'action="/admin/issues/{issue_id}/pause"' in html
    assert f'action="/admin/issues/{issue_id}/cancel"' in html
    assert f'action="/admin/issues/{issue_id}/resend-failed"' in html
    assert "/resume" not in html
    assert f'href="/admin/issues/{issue_id}/report"' in html


async def test_messages_per_second_is_the_rate_since_the_last_sample(
    editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 100)
    await set_outcomes(sessionmaker, issue_id, {"sent": 40})
    # 40 outcomes since the previous poll, ten seconds ago: 4/s; 60 queued: 15 s to go.
    at = int(time.time() * 1000) - 10_000
    url = f"/admin/issues/{issue_id}/progress?status=sending&done=0&at={at}"
    before = int(time.time() * 1000)
    panel = await editor.client.get(url)
    after = int(time.time() * 1000)
    assert panel.status_code == 200
    assert "data-hx-swap-oob" not in panel.text  # the status did not move: controls stay
    assert not panel.text.lstrip().startswith("<!doctype")  # a fragment, not a page
    rate = float(_stat(panel.text, "Messages/s"))
    assert round(40_000 / (after - at), 1) <= rate <= round(40_000 / (before - at), 1)
    eta = _stat(panel.text, "ETA")
    assert eta.endswith(" s")
    assert abs(int(eta[:-2]) - 60 / rate) <= 1
    assert POLL in panel.text
    first = await editor.client.get(f"/admin/issues/{issue_id}/progress")
    assert "measuring" in first.text  # no previous sample yet


def test_the_rate_and_eta_come_from_two_samples_not_the_whole_send() -> None:
    stats = {"status": "sending", "queued": 500, "sending": 10, "recipients": 1000}
    stats |= {"sent": 480, "failed": 5, "bounced": 5, "skipped": 0, "cancelled": 0}
    progress = measure(stats, Sample(attempted=450, at_ms=10_000), now_ms=15_000)
    assert progress.rate == 8.0  # 40 outcomes in 5 s, however long the send has run
    assert progress.eta == "1 min 2 s"
    assert progress.done == 490
    assert measure(stats, None, now_ms=15_000).rate is None
    assert measure({**stats, "status": "paused"}, None).eta == "–"
    assert measure({**stats, "status": "sent"}, Sample(0, 0), now_ms=5_000).rate is None
    assert [duration(s) for s in (12, 200, 7300, 3600)] == [
        "12 s",
        "3 min 20 s",
        "2 h 1 min",
        "1 h",
    ]


async def test_the_poll_stops_and_brings_new_controls_when_the_send_is_over(
    app: FastAPI, editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 3)
    await set_outcomes(sessionmaker, issue_id, {"sent": 3})
    await set_issue_status(sessionmaker, issue_id, "sent")
    panel = await editor.client.get(f"/admin/issues/{issue_id}/progress?status=sending")
    assert panel.status_code == 200
    assert "data-hx-get" not in panel.text
    assert POLL not in panel.text
    assert 'class="badge badge-sent"' in panel.text
    # The page's links and controls were for "sending": the answer replaces them.
    assert '<div class="actions" id="send-links" data-hx-swap-oob="true">' in panel.text
    assert '<div id="send-controls" data-hx-swap-oob="true">' in panel.text
    assert 'href="/newsletters/weekly/issues/1"' in panel.text
    assert "/pause" not in panel.text
    page = (await editor.client.get(issue_page(app).format(issue_id=issue_id))).text
    assert "data-hx-get" not in page
    assert "Refresh</a>" not in page
    assert 'href="/newsletters/weekly/issues/1"' in page  # the web version
    assert "/pause" not in page
    assert "/cancel" not in page
    assert "/resend-failed" not in page


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("done=abc&at=1", "done"),
        ("done=1&at=-5", "at"),
        ("status=exploded", "status"),
        (f"done=1&at={'9' * 30}", "at"),
    ],
)
async def test_a_malformed_poll_is_a_422_naming_the_parameter(
    editor: Editor, sessionmaker: Maker, settings: Settings, query: str, named: str
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 1)
    response = await editor.client.get(f"/admin/issues/{issue_id}/progress?{query}")
    assert response.status_code == 422
    assert f"the query parameter {named} " in response.json()["detail"]


async def test_progress_of_an_unknown_issue_is_404_and_a_stranger_is_sent_to_log_in(
    client: AsyncClient, editor: Editor
) -> None:
    assert (await editor.client.get("/admin/issues/999/progress")).status_code == 404
    response = await client.get("/admin/issues/999/progress")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")
    # A poll whose session ended takes the whole page to the login, back to the issue.
    polled = await client.get(
        "/admin/issues/999/progress",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/admin/issues/999"},
    )
    assert polled.status_code == 200
    assert polled.headers["HX-Redirect"] == "/admin/login?next=/admin/issues/999"
    assert polled.text == ""


# -- controls -------------------------------------------------------------------------------


async def test_pause_resume_and_cancel_through_the_forms_with_audit_rows(
    app: FastAPI, editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 5)
    await set_outcomes(sessionmaker, issue_id, {"sent": 2})
    base = f"/admin/issues/{issue_id}"
    paused = await editor.post(f"{base}/pause")
    assert paused.status_code == 303
    assert paused.headers["location"] == base
    assert await status_of(sessionmaker, issue_id) == "paused"
    page = (await editor.client.get(issue_page(app).format(issue_id=issue_id))).text
    assert "Sending paused" in page  # the flash
    assert "Paused: paused by an editor" in page
    assert f'action="{base}/resume"' in page
    assert f'action="{base}/pause"' not in page
    assert POLL in page  # a paused send is not over: another editor may resume it

    assert (await editor.post(f"{base}/resume")).status_code == 303
    assert await status_of(sessionmaker, issue_id) == "sending"
    assert (await editor.post(f"{base}/cancel")).status_code == 303
    assert await status_of(sessionmaker, issue_id) == "cancelled"
    assert await delivery_statuses(sessionmaker, issue_id) == {"sent": 2, "cancelled": 3}
    page = (await editor.client.get(issue_page(app).format(issue_id=issue_id))).text
    assert "Send cancelled: 3 queued messages will not be sent." in page
    assert POLL not in page
    actions = [(actor, action) for actor, action, _ in await _audit(sessionmaker)]
    assert actions[-3:] == [
        ("user editor@example.com", "issue.pause"),
        ("user editor@example.com", "issue.resume"),
        ("user editor@example.com", "issue.cancel"),
    ]


async def test_a_move_the_state_does_not_allow_is_an_error_message_not_a_409(
    app: FastAPI, editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 2)
    await set_issue_status(sessionmaker, issue_id, "sent")
    for action in ("pause", "resume", "cancel", "resend-failed"):
        response = await editor.post(f"/admin/issues/{issue_id}/{action}")
        assert response.status_code == 303, action
        page = await editor.client.get(issue_page(app).format(issue_id=issue_id))
        assert "flash-error" in page.text, action
        assert "Nothing was changed" in page.text
    assert await status_of(sessionmaker, issue_id) == "sent"
    assert [a for _, a, _ in await _audit(sessionmaker) if a.startswith("issue.")] == []


async def test_resend_failed_queues_the_failed_deliveries_again(
    app: FastAPI, editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 4)
    await set_outcomes(sessionmaker, issue_id, {"sent": 2, "failed": 2})
    await set_issue_status(sessionmaker, issue_id, "sent")
    page = (await editor.client.get(issue_page(app).format(issue_id=issue_id))).text
    assert "Resend failed deliveries" in page
    response = await editor.post(f"/admin/issues/{issue_id}/resend-failed")
    assert response.status_code == 303
    assert await delivery_statuses(sessionmaker, issue_id) == {"sent": 2, "queued": 2}
    assert await status_of(sessionmaker, issue_id) == "sending"
    page = (await editor.client.get(issue_page(app).format(issue_id=issue_id))).text
    assert "2 failed deliveries queued to be sent again." in page
    assert ("user editor@example.com", "issue.resend-failed", f"issue {issue_id}") in (
        await _audit(sessionmaker)
    )


async def test_controls_need_the_csrf_token_and_this_origin(
    editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 2)
    path = f"/admin/issues/{issue_id}/pause"
    without = await editor.client.post(path, data={}, headers={"Origin": ORIGIN})
    assert without.status_code == 403
    foreign = await editor.client.post(
        path, data=editor.form(), headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert await status_of(sessionmaker, issue_id) == "sending"
    missing = await editor.post("/admin/issues/424242/pause")
    assert missing.status_code == 404


async def test_an_admin_may_control_a_send_too(
    admin: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 2)
    assert (await admin.post(f"/admin/issues/{issue_id}/pause")).status_code == 303
    assert await status_of(sessionmaker, issue_id) == "paused"


# -- the report -----------------------------------------------------------------------------


async def test_the_report_shows_outcomes_reactions_and_deliveries_by_status(
    editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, emails = await start_issue(sessionmaker, settings, 8)
    await set_outcomes(sessionmaker, issue_id, {"sent": 5, "failed": 1, "bounced": 2})
    await set_issue_status(sessionmaker, issue_id, "sent")
    html = (await editor.client.get(f"/admin/issues/{issue_id}/report")).text
    assert (_stat(html, "Recipients"), _stat(html, "Sent"), _stat(html, "Bounced")) == (
        "8",
        "5",
        "2",
    )
    assert "Opens and clicks are not tracked" in html
    assert "Clicks per link" not in html
    assert f'href="/admin/issues/{issue_id}/report?status=bounced"' in html
    assert 'href="/newsletters/weekly/issues/1"' in html
    bounced = (await editor.client.get(f"/admin/issues/{issue_id}/report?status=bounced")).text
    assert "550 5.1.1" in bounced
    assert "250 2.0.0" not in bounced
    assert emails[6] in bounced
    assert emails[0] not in bounced
    assert 'aria-current="page">Bounced' in bounced
    empty = (await editor.client.get(f"/admin/issues/{issue_id}/report?status=skipped")).text
    assert "No delivery of this issue is skipped." in empty


async def test_the_report_pages_deliveries_by_keyset(
    editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, emails = await start_issue(sessionmaker, settings, 60)
    first = (await editor.client.get(f"/admin/issues/{issue_id}/report")).text
    found = re.search(r'href="(/admin/issues/\d+/report\?cursor=[^"]+)" rel="next"', first)
    assert found is not None
    assert emails[49] in first
    assert emails[50] not in first
    second = (await editor.client.get(found.group(1).replace("&amp;", "&"))).text
    assert emails[50] in second
    assert emails[59] in second
    assert emails[0] not in second
    assert 'rel="next"' not in second
    assert "First page" in second


async def test_the_report_shows_opens_and_clicks_per_link_when_tracked(
    editor: Editor, sessionmaker: Maker, settings: Settings
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 6, track_opens=True, track_clicks=True)
    await set_outcomes(sessionmaker, issue_id, {"sent": 6})
    await add_clicks(sessionmaker, issue_id, "https://example.org/stories/1", readers=3, each=2)
    await add_clicks(sessionmaker, issue_id, "https://example.org/stories/2", readers=1, each=1)
    html = (await editor.client.get(f"/admin/issues/{issue_id}/report")).text
    assert "Clicks per link" in html
    rows = re.findall(
        r'<a href="(https://example.org/stories/\d)"[^>]*>[^<]*</a></td>'
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        html,
    )
    assert rows == [
        ("https://example.org/stories/1", "3", "6"),
        ("https://example.org/stories/2", "1", "1"),
    ]
    assert _stat(html, "Clicked by") == "3"
    assert _stat(html, "Opened by") == "3"


@pytest.mark.parametrize("query", ["status=lost", "cursor=not-a-cursor"])
async def test_a_bad_report_filter_is_a_422_naming_it(
    editor: Editor, sessionmaker: Maker, settings: Settings, query: str
) -> None:
    issue_id, _ = await start_issue(sessionmaker, settings, 1)
    response = await editor.client.get(
        f"/admin/issues/{issue_id}/report?{query}", headers={"Accept": "text/html"}
    )
    assert response.status_code == 422
    assert f"the query parameter {query.split('=')[0]} " in response.text


async def test_the_report_of_an_unknown_issue_is_404(editor: Editor) -> None:
    response = await editor.client.get("/admin/issues/777/report", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<html" in response.text


async def test_a_real_send_ends_in_a_report_with_the_smtp_replies(
    app: FastAPI,
    editor: Editor,
    engine: AsyncEngine,
    sessionmaker: Maker,
    settings: Settings,
    mailbox: object,
) -> None:
    issue_id, emails = await start_issue(sessionmaker, settings, 3)
    async with running_worker(settings, engine):

        async def sent() -> bool:
            return await status_of(sessionmaker, issue_id) == "sent"

        await wait_until(sent, timeout=30)
    async with sessionmaker() as session:
        issue = await session.get(Issue, issue_id)
        assert issue is not None
        assert issue.status == "sent"
    page = (await editor.client.get(issue_page(app).format(issue_id=issue_id))).text
    assert _stat(page, "Sent") == "3"
    assert POLL not in page
    report = (await editor.client.get(f"/admin/issues/{issue_id}/report?status=sent")).text
    assert all(email in report for email in emails)
    assert report.count("<code>OK queued</code>") == 3  # what the test server answered
