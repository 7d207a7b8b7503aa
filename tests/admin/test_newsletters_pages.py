"""The newsletter screens: the overview, create and settings forms (SPEC section 11)."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import AuditEvent, Newsletter
from tests.admin.support import ORIGIN, Editor
from tests.factories import create_issue, create_newsletter, create_readers

FORM: dict[str, str] = {
    "name": "The Friday Letter",
    "slug": "friday",
    "description": "Five links, every Friday.",
    "from_name": "Friday Desk",
    "from_email": "desk@friday.example.com",
    "reply_to": "",
    "postal_address": "1 Main Street\r\nSpringfield",
    "schedule_cron": "0 8 * * FRI",
    "timezone": "Europe/Berlin",
    "double_opt_in": "on",
    "track_opens": "on",
}


async def _newsletter(session: AsyncSession, slug: str) -> Newsletter | None:
    session.expire_all()
    found = await session.execute(select(Newsletter).where(Newsletter.slug == slug))
    return found.scalar_one_or_none()


async def test_the_empty_overview_invites_a_first_newsletter(editor: Editor) -> None:
    page = await editor.client.get("/admin")
    assert page.status_code == 200
    assert "No newsletters yet" in page.text
    assert 'href="/admin/newsletters/new"' in page.text


async def test_the_overview_shows_active_subscribers_sending_and_next_send(
    editor: Editor, session: AsyncSession
) -> None:
    weekly = await create_newsletter(
        session, readers=3, schedule_cron="0 9 * * MON", timezone="Europe/Berlin"
    )
    await create_readers(session, weekly, 2, status="unsubscribed", prefix="gone")
    await create_issue(session, weekly, status="ready", subject="Ready for Monday")
    await create_issue(session, weekly, status="sending", subject="Going out now", recipients=3)
    await session.commit()
    await create_newsletter(session, slug="quiet", name="The Quiet One")

    page = await editor.client.get("/admin")

    assert page.status_code == 200
    text = page.text
    assert "The Weekly" in text
    assert "The Quiet One" in text
    assert ">3</a>" in text  # active only: the two unsubscribed are not counted
    assert "Sending now" in text
    assert "Going out now" in text
    assert "Ready for Monday" in text
    assert "09:00 CET" in text  # the next Monday tick, in the newsletter's zone
    assert "Nothing scheduled" in text  # the quiet one


async def test_the_overview_names_a_one_off_schedule_as_the_next_send(
    editor: Editor, session: AsyncSession
) -> None:
    weekly = await create_newsletter(session, timezone="Europe/Berlin")  # no cron
    at = utcnow().replace(microsecond=0) + timedelta(days=3)
    await create_issue(session, weekly, status="scheduled", subject="Later", scheduled_at=at)

    page = await editor.client.get("/admin")

    assert page.status_code == 200
    assert f'<time datetime="{at.isoformat()}">' in page.text
    assert "#1 Later</a> (scheduled)" in page.text
    assert "Nothing scheduled" not in page.text


async def test_an_editor_creates_a_newsletter_through_the_form(
    editor: Editor, session: AsyncSession
) -> None:
    form = await editor.client.get("/admin/newsletters/new")
    assert form.status_code == 200
    assert 'name="slug"' in form.text

    response: Any = await editor.post("/admin/newsletters/new", **FORM)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/newsletters/friday"
    created = await _newsletter(session, "friday")
    assert created is not None
    assert created.timezone == "Europe/Berlin"
    assert created.postal_address == "1 Main Street\nSpringfield"
    assert created.reply_to is None
    assert (created.double_opt_in, created.track_opens, created.track_clicks) == (
        True,
        True,
        False,
    )
    page = await editor.client.get("/admin/newsletters/friday")
    assert "The Friday Letter is created" in page.text
    audit = (await session.execute(select(AuditEvent))).scalars().all()
    assert [(a.actor, a.action, a.subject) for a in audit] == [
        ("user editor@example.com", "newsletter.create", "newsletter friday")
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slug", "Not A Slug", "lower-case letters"),
        ("from_email", "not-an-address", "from_email-error"),
        ("timezone", "Mars/Olympus", "timezone-error"),
        ("schedule_cron", "every monday", "schedule_cron-error"),
        ("name", "", "This field is required."),
    ],
)
async def test_bad_input_is_named_next_to_its_field(
    editor: Editor, session: AsyncSession, field: str, value: str, message: str
) -> None:
    response: Any = await editor.post("/admin/newsletters/new", **{**FORM, field: value})
    assert response.status_code == 422
    assert message in response.text
    assert f'id="{field}-error"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert await _newsletter(session, "friday") is None


async def test_a_taken_slug_is_a_409_with_the_form_again(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session, slug="friday")
    response: Any = await editor.post("/admin/newsletters/new", **FORM)
    assert response.status_code == 409
    assert "already exists" in response.text
    assert html.escape("The Friday Letter") in response.text  # the typed values stay


async def test_the_settings_page_shows_next_five_sends_and_the_signup_form(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(
        session, schedule_cron="30 7 * * *", timezone="America/New_York", track_clicks=True
    )
    page = await editor.client.get("/admin/newsletters/weekly")
    assert page.status_code == 200
    text = page.text
    assert text.count("07:30 E") == 5  # EST or EDT
    assert "Next five sends" in text
    snippet = html.unescape(text.split("<code>", 1)[1].split("</code>", 1)[0])
    assert 'action="http://testserver/newsletters/weekly/subscribe"' in snippet
    assert 'name="email"' in snippet
    assert 'name="website"' in snippet  # the honeypot
    assert 'aria-current="page">Settings' in text


async def test_saving_settings_changes_the_newsletter(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session)
    fields = {**FORM, "slug": "weekly", "name": "The Weekly, renamed", "auto_send_upcoming": "on"}
    del fields["double_opt_in"]
    response: Any = await editor.post("/admin/newsletters/weekly", **fields)
    assert response.status_code == 303
    saved = await _newsletter(session, "weekly")
    assert saved is not None
    assert saved.name == "The Weekly, renamed"
    assert saved.double_opt_in is False
    assert saved.auto_send_upcoming is True
    assert saved.schedule_cron == "0 8 * * FRI"


async def test_bad_settings_are_refused_and_nothing_changes(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session)
    response: Any = await editor.post(
        "/admin/newsletters/weekly", **{**FORM, "slug": "weekly", "reply_to": "nope"}
    )
    assert response.status_code == 422
    assert 'id="reply_to-error"' in response.text
    saved = await _newsletter(session, "weekly")
    assert saved is not None
    assert saved.name == "The Weekly"


async def test_the_settings_form_needs_the_csrf_token_and_this_origin(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session)
    fields = {**FORM, "slug": "weekly", "name": "Hijacked"}
    no_token = await editor.client.post(
        "/admin/newsletters/weekly", data=fields, headers={"Origin": ORIGIN}
    )
    assert no_token.status_code == 403
    foreign = await editor.client.post(
        "/admin/newsletters/weekly",
        data=editor.form(**fields),
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    saved = await _newsletter(session, "weekly")
    assert saved is not None
    assert saved.name == "The Weekly"


async def test_an_unknown_newsletter_is_a_404_page(editor: Editor) -> None:
    response = await editor.client.get("/admin/newsletters/nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "nope" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/newsletters/new",
        "/admin/newsletters/weekly",
        "/admin/newsletters/weekly/issues",
        "/admin/newsletters/weekly/schedule",
    ],
)
async def test_editors_and_admins_both_open_the_newsletter_screens(
    editor: Editor, admin: Editor, session: AsyncSession, path: str
) -> None:
    await create_newsletter(session)
    for person in (editor, admin):
        response = await person.client.get(path)
        assert response.status_code == 200, (person.email, response.text)


@pytest.mark.parametrize("tail", ["", "/issues", "/schedule"])
async def test_the_screens_of_an_unknown_newsletter_are_404(editor: Editor, tail: str) -> None:
    response = await editor.client.get(
        f"/admin/newsletters/missing{tail}", headers={"Accept": "text/html"}
    )
    assert response.status_code == 404
    assert "missing" in response.text
