"""The issue editor at /admin/issues/{id}: every action, its refusals and its audit rows."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import AuditEvent, Issue, Newsletter, OutboxMessage, Story
from tests.admin.support import ORIGIN, Editor
from tests.factories import create_issue, create_newsletter, create_readers, create_subscription

pytestmark = pytest.mark.usefixtures("editor")


async def _issue(
    sessionmaker: async_sessionmaker[AsyncSession], *, stories: int = 2, **overrides: Any
) -> Issue:
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(
            session, slug="weekly", double_opt_in=False, timezone="Europe/Berlin"
        )
        await create_readers(session, newsletter, 3)
        return await create_issue(session, newsletter, stories=stories, **overrides)


async def _fresh(sessionmaker: async_sessionmaker[AsyncSession], issue_id: int) -> Issue:
    async with sessionmaker() as session:
        issue = await session.get(Issue, issue_id)
        assert issue is not None
        return issue


async def _stories(sessionmaker: async_sessionmaker[AsyncSession], issue_id: int) -> list[Story]:
    async with sessionmaker() as session:
        result = await session.execute(
            select(Story).where(Story.issue_id == issue_id).order_by(Story.position)
        )
        return list(result.scalars())


async def _audit(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        result = await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))
        return list(result.scalars())


def _form(issue: Issue, stories: list[Story], **changes: str) -> dict[str, str]:
    """The editor's form as the page sends it."""
    fields = {
        "subject": issue.subject,
        "preheader": issue.preheader,
        "intro": issue.intro,
        "outro": issue.outro,
        "story_count": str(len(stories)),
    }
    for i, story in enumerate(stories):
        for name in ("title", "body", "url", "source", "image_url", "image_alt"):
            fields[f"story-{i}-{name}"] = getattr(story, name) or ""
    fields.update(changes)
    return fields


async def _post(editor: Editor, path: str, **fields: str) -> Response:
    response = await editor.post(path, **fields)
    assert isinstance(response, Response)
    return response


async def test_the_editor_shows_fields_stories_preview_and_checks(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert page.status_code == 200
    text = page.text
    assert 'name="subject"' in text
    assert 'name="story-1-title"' in text
    assert f'data-hx-post="/admin/issues/{issue.id}/autosave"' in text
    assert 'data-hx-trigger="input changed delay:800ms"' in text
    assert f'src="/admin/issues/{issue.id}/preview?v=' in text
    assert 'sandbox=""' in text
    assert 'class="findings"' in text
    assert 'href="/admin/newsletters/weekly/issues"' in text
    assert 'value="editor@example.com"' in text  # the test send goes to the viewer


async def test_the_preview_is_the_subscribers_email_framed_only_by_the_dashboard(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    response = await editor.client.get(f"/admin/issues/{issue.id}/preview?v=1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Alex" in response.text  # the sample subscriber
    assert "Story 2: something worth reading" in response.text
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "script-src 'none'" in csp
    assert "https:" in csp.split("img-src")[1].split(";")[0]
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_the_preview_follows_a_change_to_the_newsletter(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The rendering kept between views is keyed on the newsletter's last change too."""
    issue = await _issue(sessionmaker)
    url = f"/admin/issues/{issue.id}/preview"
    assert "9 Rue du Renouveau" not in (await editor.client.get(url)).text
    async with unit_of_work(sessionmaker) as session:
        newsletter = await session.get(Newsletter, issue.newsletter_id)
        assert newsletter is not None
        newsletter.postal_address = "9 Rue du Renouveau"
    assert "9 Rue du Renouveau" in (await editor.client.get(url)).text


async def test_save_writes_through_the_issues_service(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    stories = await _stories(sessionmaker, issue.id)
    fields = _form(issue, stories, subject="A new subject", **{"story-1-title": "Retitled"})
    response = await _post(editor, f"/admin/issues/{issue.id}", **fields)
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/issues/{issue.id}"
    assert (await _fresh(sessionmaker, issue.id)).subject == "A new subject"
    assert [s.title for s in await _stories(sessionmaker, issue.id)][1] == "Retitled"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("subject", "x" * 301, "at most 300 characters"),
        ("subject", "  ", "must not be empty"),
        ("story-0-url", "javascript:alert(1)", "http:// or https://"),
        ("story-1-image_url", "not a url", "http:// or https://"),
        ("story-0-title", "", "must not be empty"),
    ],
)
async def test_bad_input_is_named_beside_its_field_with_a_400(
    editor: Editor,
    sessionmaker: async_sessionmaker[AsyncSession],
    field: str,
    value: str,
    message: str,
) -> None:
    issue = await _issue(sessionmaker)
    stories = await _stories(sessionmaker, issue.id)
    response = await _post(
        editor, f"/admin/issues/{issue.id}", **_form(issue, stories, **{field: value})
    )
    assert response.status_code == 400
    error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', response.text)
    assert error is not None, response.text
    assert message in html.unescape(error.group(1))
    assert f'aria-describedby="{field}-hint {field}-error"' in response.text or (
        f'aria-describedby="{field}-error"' in response.text
    )
    assert f'<a href="#{field}">' in response.text  # the summary leads to the field
    assert (await _fresh(sessionmaker, issue.id)).subject == issue.subject


async def test_a_bad_story_count_is_a_400(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    response = await _post(editor, f"/admin/issues/{issue.id}", subject="x", story_count="many")
    assert response.status_code == 400


async def test_autosave_answers_saved_at_in_the_newsletters_zone(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    stories = await _stories(sessionmaker, issue.id)
    response = await editor.client.post(
        f"/admin/issues/{issue.id}/autosave",
        data=_form(issue, stories, intro="Typed *as we go*"),
        headers={"Origin": ORIGIN, "HX-Request": "true", "X-CSRF-Token": editor.csrf},
    )
    assert response.status_code == 200
    saved = re.search(r"Saved (\d\d:\d\d)", response.text)
    assert saved is not None
    berlin = ZoneInfo("Europe/Berlin")
    around = {f"{(utcnow() + timedelta(minutes=m)).astimezone(berlin):%H:%M}" for m in (-1, 0)}
    assert saved.group(1) in around
    assert 'id="preview-frames" data-hx-swap-oob="true"' in response.text
    assert 'id="editor-checks" data-hx-swap-oob="true"' in response.text
    assert "<html" not in response.text  # a fragment, not a page
    assert (await _fresh(sessionmaker, issue.id)).intro == "Typed *as we go*"


async def test_autosave_refuses_bad_input_and_says_why(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    stories = await _stories(sessionmaker, issue.id)
    path = f"/admin/issues/{issue.id}/autosave"
    fields = _form(issue, stories, subject="y" * 400)
    plain = await _post(editor, path, **fields)
    assert plain.status_code == 400
    assert "Not saved" in plain.text
    htmx = await editor.client.post(
        path, data=editor.form(**fields), headers={"Origin": ORIGIN, "HX-Request": "true"}
    )
    assert htmx.status_code == 200  # htmx swaps only 2xx: the fragment says it was refused
    assert "Not saved: the subject is too long: at most 300 characters" in htmx.text
    assert (await _fresh(sessionmaker, issue.id)).subject == issue.subject


@pytest.mark.parametrize("path", ["", "/autosave", "/stories/add", "/stories/0/up", "/test"])
async def test_every_form_needs_the_csrf_token_and_this_origin(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession], path: str
) -> None:
    issue = await _issue(sessionmaker)
    stories = await _stories(sessionmaker, issue.id)
    fields = _form(issue, stories, subject="Changed", to="x@example.com", **{"new-title": "N"})
    url = f"/admin/issues/{issue.id}{path}"
    no_token = await editor.client.post(url, data=fields, headers={"Origin": ORIGIN})
    assert no_token.status_code == 403
    foreign = await editor.client.post(
        url, data=editor.form(**fields), headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await _fresh(sessionmaker, issue.id)).subject == issue.subject
    async with sessionmaker() as session:
        assert (await session.execute(select(OutboxMessage))).first() is None


async def test_stories_are_added_moved_and_removed(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    base = f"/admin/issues/{issue.id}"

    async def form(**changes: str) -> dict[str, str]:
        return _form(issue, await _stories(sessionmaker, issue.id), **changes)

    added = await _post(
        editor,
        f"{base}/stories/add",
        **await form(**{"new-title": "Third", "new-url": "https://example.org/3"}),
    )
    assert added.status_code == 303
    titles = [s.title for s in await _stories(sessionmaker, issue.id)]
    assert titles[2] == "Third"
    assert (await _post(editor, f"{base}/stories/2/up", **await form())).status_code == 303
    assert [s.title for s in await _stories(sessionmaker, issue.id)] == [
        titles[0],
        "Third",
        titles[1],
    ]
    assert (await _post(editor, f"{base}/stories/0/down", **await form())).status_code == 303
    assert [s.title for s in await _stories(sessionmaker, issue.id)][:2] == ["Third", titles[0]]
    # A half-written story can be removed; the rest is saved as typed.
    removed = await _post(
        editor,
        f"{base}/stories/0/remove",
        **await form(intro="Kept", **{"story-0-url": "bad"}),
    )
    assert removed.status_code == 303
    assert [s.title for s in await _stories(sessionmaker, issue.id)] == [titles[0], titles[1]]
    assert (await _fresh(sessionmaker, issue.id)).intro == "Kept"


async def test_story_buttons_refuse_bad_input(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    stories = await _stories(sessionmaker, issue.id)
    base = f"/admin/issues/{issue.id}"
    no_title = await _post(editor, f"{base}/stories/add", **_form(issue, stories))
    assert no_title.status_code == 400
    assert 'id="new-title-error"' in no_title.text
    bad_url = await _post(
        editor,
        f"{base}/stories/add",
        **_form(issue, stories, **{"new-title": "T", "new-url": "ftp://x"}),
    )
    assert bad_url.status_code == 400
    assert 'id="new-url-error"' in bad_url.text
    missing = await _post(editor, f"{base}/stories/7/down", **_form(issue, stories))
    assert missing.status_code == 400
    assert len(await _stories(sessionmaker, issue.id)) == 2


@pytest.mark.parametrize("status", ["scheduled", "sending", "sent", "cancelled"])
async def test_an_issue_past_ready_cannot_be_edited(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession], status: str
) -> None:
    at = utcnow() + timedelta(days=2)
    issue = await _issue(sessionmaker, status=status, scheduled_at=at)
    stories = await _stories(sessionmaker, issue.id)
    base = f"/admin/issues/{issue.id}"
    for path in ("", "/stories/add", "/stories/0/down", "/stories/0/remove"):
        fields = _form(issue, stories, subject="Changed", **{"new-title": "New"})
        response = await _post(editor, base + path, **fields)
        assert response.status_code == 409, path
    assert (await _fresh(sessionmaker, issue.id)).subject == issue.subject
    assert len(await _stories(sessionmaker, issue.id)) == 2


async def test_a_scheduled_issue_offers_unschedule_and_reads_only(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker, status="scheduled", scheduled_at=utcnow() + timedelta(1))
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert page.status_code == 200
    assert f'action="/admin/issues/{issue.id}/unschedule"' in page.text
    assert "data-hx-post" not in page.text
    assert "readonly" in page.text
    response = await _post(editor, f"/admin/issues/{issue.id}/unschedule")
    assert response.status_code == 303
    fresh = await _fresh(sessionmaker, issue.id)
    assert fresh.status == "draft"
    assert fresh.scheduled_at is None
    assert await _audit(sessionmaker) == ["issue.unschedule"]


async def test_a_sending_issue_shows_the_send_view(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker, status="sent")
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert page.status_code == 200
    assert 'class="send-title"' in page.text
    assert 'name="subject"' not in page.text


async def test_mark_ready_and_back_to_draft(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    response = await _post(editor, f"/admin/issues/{issue.id}/ready")
    assert response.status_code == 303
    assert (await _fresh(sessionmaker, issue.id)).status == "ready"
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert f'action="/admin/issues/{issue.id}/draft"' in page.text
    assert (await _post(editor, f"/admin/issues/{issue.id}/draft")).status_code == 303
    assert (await _fresh(sessionmaker, issue.id)).status == "draft"
    assert await _audit(sessionmaker) == ["issue.ready", "issue.unready"]


async def test_an_empty_issue_is_not_marked_ready(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker, stories=0, intro="")
    response = await _post(editor, f"/admin/issues/{issue.id}/ready")
    assert response.status_code == 303
    page = await editor.client.get(response.headers["location"])
    assert "Not ready: the issue is empty" in page.text
    assert (await _fresh(sessionmaker, issue.id)).status == "draft"


async def test_schedule_reads_the_time_in_the_newsletters_zone(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    year = utcnow().year + 1
    response = await _post(editor, f"/admin/issues/{issue.id}/schedule", at=f"{year}-07-06T09:30")
    assert response.status_code == 303
    fresh = await _fresh(sessionmaker, issue.id)
    assert fresh.status == "scheduled"
    assert fresh.scheduled_at == datetime(year, 7, 6, 7, 30, tzinfo=UTC)  # CEST is UTC+2
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert "09:30 CEST" in page.text
    assert f'value="{year}-07-06T09:30"' in page.text
    assert await _audit(sessionmaker) == ["issue.schedule"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Choose a date"),
        ("tomorrow", "YYYY-MM-DD"),
        ("2020-01-01T09:00", "in the past"),
        ("0001-01-01T00:00", "out of range"),
        ("9999-12-31T23:59", "ten years"),
        ("2030-01-01T09:00+05:00", "without an offset"),
    ],
)
async def test_a_bad_schedule_time_is_named_beside_the_field(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession], value: str, message: str
) -> None:
    issue = await _issue(sessionmaker)
    response = await _post(editor, f"/admin/issues/{issue.id}/schedule", at=value)
    assert response.status_code == 400
    error = re.search(r'<p class="field-error" id="at-error">([^<]*)</p>', response.text)
    assert error is not None
    assert message in html.unescape(error.group(1))
    assert (await _fresh(sessionmaker, issue.id)).status == "draft"


async def test_a_test_send_goes_to_the_outbox(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    response = await _post(
        editor, f"/admin/issues/{issue.id}/test", to="a@example.com, b@example.com"
    )
    assert response.status_code == 303
    async with sessionmaker() as session:
        rows = list((await session.execute(select(OutboxMessage))).scalars())
    assert sorted(r.rcpt_to for r in rows) == ["a@example.com", "b@example.com"]
    assert {r.kind for r in rows} == {"test"}
    assert await _audit(sessionmaker) == ["issue.test"]
    assert (await _fresh(sessionmaker, issue.id)).status == "draft"


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("", "at least one"),
        ("not-an-address", "not-an-address"),
        (",".join(["a@x.org"] * 11), "10"),
    ],
)
async def test_bad_test_addresses_are_refused(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession], to: str, message: str
) -> None:
    issue = await _issue(sessionmaker)
    response = await _post(editor, f"/admin/issues/{issue.id}/test", to=to)
    assert response.status_code == 400
    error = re.search(r'<p class="field-error" id="to-error">([^<]*)</p>', response.text)
    assert error is not None
    assert message in html.unescape(error.group(1))
    async with sessionmaker() as session:
        assert (await session.execute(select(OutboxMessage))).first() is None


async def test_send_now_confirms_with_the_exact_recipient_count_then_sends(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    async with unit_of_work(sessionmaker) as session:
        newsletter = await session.get(Newsletter, issue.newsletter_id)
        assert newsletter is not None
        await create_subscription(session, newsletter, "gone@example.com", status="unsubscribed")
    page = await editor.client.get(f"/admin/issues/{issue.id}/send")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert f"Send '{issue.subject}' to 3 subscribers of The Weekly?" in text
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert key is not None
    response = await _post(editor, f"/admin/issues/{issue.id}/send", key=key.group(1))
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/issues/{issue.id}"
    assert (await _fresh(sessionmaker, issue.id)).status == "sending"
    # The same form posted twice (a double click) answers the first result.
    again = await _post(editor, f"/admin/issues/{issue.id}/send", key=key.group(1))
    assert again.status_code == 303
    other = await _post(editor, f"/admin/issues/{issue.id}/send", key="x" * 24)
    assert other.status_code == 409
    assert (await _fresh(sessionmaker, issue.id)).recipients == 3
    assert await _audit(sessionmaker) == ["issue.send"]


async def test_send_needs_its_key_and_the_csrf_token(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker)
    path = f"/admin/issues/{issue.id}/send"
    assert (await _post(editor, path)).status_code == 422
    refused = await editor.client.post(path, data={"key": "k" * 24}, headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    assert (await _fresh(sessionmaker, issue.id)).status == "draft"


async def test_an_unknown_issue_is_a_404_and_a_stranger_goes_to_login(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await editor.client.get("/admin/issues/999999")).status_code == 404
    issue = await _issue(sessionmaker)
    editor.client.cookies.clear()
    response = await editor.client.get(f"/admin/issues/{issue.id}/preview")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")


async def test_autosave_of_a_scheduled_issue_is_refused(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker, status="scheduled", scheduled_at=utcnow() + timedelta(1))
    stories = await _stories(sessionmaker, issue.id)
    path = f"/admin/issues/{issue.id}/autosave"
    fields = _form(issue, stories, subject="Changed")
    assert (await _post(editor, path, **fields)).status_code == 409
    htmx = await editor.client.post(
        path, data=editor.form(**fields), headers={"Origin": ORIGIN, "HX-Request": "true"}
    )
    assert htmx.status_code == 200
    assert "Not saved: the issue is scheduled" in htmx.text
    assert (await _fresh(sessionmaker, issue.id)).subject == issue.subject


async def test_the_checks_show_inline_and_on_the_send_confirmation(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session, slug="weekly", postal_address="")
        issue = await create_issue(session, newsletter, stories=1)
    page = await editor.client.get(f"/admin/issues/{issue.id}")
    assert '<li class="finding-error">' in page.text
    assert "no postal address" in page.text
    confirm = await editor.client.get(f"/admin/issues/{issue.id}/send")
    assert "The checks found 1 problem" in confirm.text
    assert "no postal address" in confirm.text
    assert "to 0 subscribers of" in html.unescape(confirm.text)


async def test_a_sent_issue_has_no_send_confirmation(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    issue = await _issue(sessionmaker, status="sent")
    response = await editor.client.get(f"/admin/issues/{issue.id}/send")
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/issues/{issue.id}"
