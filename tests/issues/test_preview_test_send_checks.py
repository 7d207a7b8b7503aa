from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.main import create_app
from app.models import Delivery, Issue, OutboxMessage
from app.settings import Settings
from app.worker import run_worker
from tests.conftest import make_settings
from tests.factories import create_issue, create_newsletter, create_subscription, stories_of
from tests.smtp import MailSink


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_preview_html_text_and_eml_show_the_sample_subscriber(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=2)
    url = f"/api/v1/issues/{issue.id}/preview"
    html = await client.get(url, headers=editor_headers)
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "Hi Alex Reader," in html.text
    assert "Story 2: something worth reading" in html.text
    assert "http://testserver/unsubscribe/" in html.text
    assert "1 Fleet Street" in html.text
    text = await client.get(url + "?format=text", headers=editor_headers)
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Hi Alex Reader," in text.text
    assert "Read more: https://example.org/stories/1" in text.text
    eml = await client.get(url + "?format=eml", headers=editor_headers)
    assert eml.headers["content-type"] == "message/rfc822"
    message = parse(eml.content)
    assert message["To"].addresses[0].display_name == "Alex Reader"
    assert message["Subject"] == "This week: findings, quotes & more"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    bad = await client.get(url + "?format=pdf", headers=editor_headers)
    assert bad.status_code == 422


async def test_preview_renders_the_current_draft_content(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=1)
    await client.patch(
        f"/api/v1/issues/{issue.id}", json={"intro": "Fresh *intro*"}, headers=editor_headers
    )
    html = await client.get(f"/api/v1/issues/{issue.id}/preview", headers=editor_headers)
    assert "Fresh <em" in html.text


async def test_preview_of_a_sending_issue_shows_the_frozen_rendering(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession, settings: Settings
) -> None:
    from app.rendering.prepared import freeze_issue

    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=1)
    stories = await stories_of(session, issue)
    freeze_issue(issue, newsletter, stories, settings)
    issue.status = "sending"
    # The content changes underneath (directly in the table); the frozen copy wins.
    issue.intro = "Changed after freezing"
    await session.commit()
    html = await client.get(f"/api/v1/issues/{issue.id}/preview", headers=editor_headers)
    assert "Changed after freezing" not in html.text
    assert "this week&#39;s" in html.text or "this week's" in html.text


async def test_test_send_queues_one_outbox_message_per_address_and_no_delivery(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=2)
    subscription = await create_subscription(session, newsletter, "reader@example.org", "Ria")
    response = await client.post(
        f"/api/v1/issues/{issue.id}/test",
        json={"to": ["Editor@Example.COM", "reader@example.org"]},
        headers=editor_headers,
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"queued": 2}
    rows = list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())
    assert [r.kind for r in rows] == ["test", "test"]
    assert [r.rcpt_to for r in rows] == ["Editor@example.com", "reader@example.org"]
    assert all(r.mail_from == "desk@news.example.com" for r in rows)
    assert rows[0].message_id != rows[1].message_id
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
    first, second = parse(rows[0].message), parse(rows[1].message)
    assert first["Subject"] == "[Test] This week: findings, quotes & more"
    assert first["Message-ID"] == rows[0].message_id
    assert "Hi there," in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # A subscribed address gets its own name and its own working unsubscribe link.
    assert "Hi Ria," in second.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert rows[1].subscription_id == subscription.id
    issue_row = await session.get(Issue, issue.id)
    assert issue_row is not None
    assert issue_row.status == "draft"


@pytest.mark.parametrize(
    "payload",
    [
        {"to": []},
        {"to": ["not-an-address"]},
        {"to": [f"a{i}@example.com" for i in range(11)]},
        {"to": ["a@example.com\r\nBcc: b@example.com"]},
        {},
    ],
)
async def test_test_send_refuses_bad_recipient_lists(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession, payload: object
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter)
    response = await client.post(
        f"/api/v1/issues/{issue.id}/test", json=payload, headers=editor_headers
    )
    assert response.status_code == 422
    assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_test_send_arrives_in_the_mailbox_through_the_worker(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    settings: Settings,
    engine: AsyncEngine,
    mailbox: MailSink,
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=3)
    response = await client.post(
        f"/api/v1/issues/{issue.id}/test", json={"to": ["me@example.com"]}, headers=editor_headers
    )
    assert response.status_code == 202
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(settings, stop=stop, engine=engine, with_scheduler=False)
    )
    try:
        for _ in range(300):  # at most ~15 s
            if mailbox.to("me@example.com"):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    [captured] = mailbox.to("me@example.com")
    assert captured.mail_from == "desk@news.example.com"
    message = captured.message
    assert message["Subject"] == "[Test] This week: findings, quotes & more"
    assert all(not part.defects for part in message.walk())
    html = message.get_body(("html",))
    assert html is not None
    assert "Story 3: something worth reading" in html.get_content()


async def test_checks_pass_for_a_complete_issue(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    story_overrides = [{"image_alt": "A chart"}, {}, {"image_alt": "A photo"}]
    issue = await create_issue(session, newsletter, stories=3, story_overrides=story_overrides)
    response = await client.get(f"/api/v1/issues/{issue.id}/check", headers=editor_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True, body["findings"]
    # The only finding is about the test server's http BASE_URL, not the issue.
    assert [f["code"] for f in body["findings"]] == ["base_url_not_https"]
    assert 5_000 < body["size_bytes"] < 102 * 1024
    assert body["size_limit_bytes"] == 102 * 1024
    assert body["message_bytes"] > body["size_bytes"] / 2
    assert body["links"] > 3
    assert body["images"] == 2


async def test_checks_report_each_problem_with_its_severity_and_place(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session, postal_address="")
    issue = await create_issue(
        session,
        newsletter,
        stories=2,
        subject="A subject line that goes on and on, well past what any inbox shows " + "x" * 20,
        preheader="",
        intro="See [relative](/about) and ![](https://img.example.org/no-alt.png)",
        story_overrides=[
            {
                "body": "[bad](javascript:alert(1)) and [ok](https://example.org) "
                '<img src="https://img.example.org/inline.png">'
            },
            {"image_url": "https://img.example.org/x.png", "image_alt": None},
        ],
    )
    body = (await client.get(f"/api/v1/issues/{issue.id}/check", headers=editor_headers)).json()
    found = {(f["code"], f["severity"], f["where"]) for f in body["findings"]}
    assert ("subject_long", "warning", "subject") in found
    assert ("preheader_missing", "info", "preheader") in found
    assert ("postal_address_missing", "error", "newsletter.postal_address") in found
    assert ("link_not_http", "error", "intro") in found
    assert ("image_without_alt", "warning", "intro") in found
    assert ("link_not_http", "error", "stories[0].body") in found
    assert ("image_without_alt", "warning", "stories[0].body") in found
    assert ("image_without_alt", "warning", "stories[1].image_alt") in found
    assert body["ok"] is False
    assert all(f["message"] for f in body["findings"])


async def test_checks_flag_an_empty_issue_and_an_oversized_one(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    empty = await create_issue(session, newsletter, stories=0, intro="")
    body = (await client.get(f"/api/v1/issues/{empty.id}/check", headers=editor_headers)).json()
    assert ("issue_empty", "error") in {(f["code"], f["severity"]) for f in body["findings"]}
    big_body = "A paragraph of text that keeps going. " * 400
    large = await create_issue(
        session, newsletter, stories=8, story_overrides=[{"body": big_body}] * 8
    )
    body = (await client.get(f"/api/v1/issues/{large.id}/check", headers=editor_headers)).json()
    assert body["size_bytes"] > 102 * 1024
    [finding] = [f for f in body["findings"] if f["code"] == "html_too_large"]
    assert finding["severity"] == "error"
    assert body["ok"] is False


async def test_one_click_unsubscribe_from_a_personalised_copy_really_unsubscribes(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The List-Unsubscribe header of a real copy, POSTed as RFC 8058 says, works."""
    from app.kit.tokens import Signer
    from app.models import Subscription
    from app.rendering.prepared import Recipient, freeze_issue, prepare_issue

    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=1)
    stories = await stories_of(session, issue)
    subscription = await create_subscription(session, newsletter, "leaver@example.org", "Lee")
    freeze_issue(issue, newsletter, stories, settings)
    prepared = prepare_issue(
        issue, newsletter, settings, Signer(settings.secret), installation="abcdefghij"
    )
    message = parse(
        prepared.personalise(Recipient(1, subscription.id, "leaver@example.org", "Lee"))
    )
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert url.startswith("http://testserver/unsubscribe/")
    html = message.get_body(("html",))
    assert html is not None
    assert f'href="{url}"' in html.get_content()
    response = await client.post(
        url.removeprefix("http://testserver"),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    row = (
        await session.execute(
            select(Subscription)
            .where(Subscription.id == subscription.id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert row.status == "unsubscribed"


async def test_checks_catch_a_replaced_template_without_unsubscribe_link_or_address(
    session: AsyncSession,
    engine: AsyncEngine,
    database_url: str,
    smtp_server: tuple[MailSink, int],
    editor_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    (tmp_path / "issue.html").write_text("<html><body><p>{{ subject }}</p></body></html>")
    (tmp_path / "issue.txt").write_text("{{ subject }}")
    app = create_app(
        make_settings(database_url, smtp_server[1], templates_dir=tmp_path), engine=engine
    )
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=1)
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(f"/api/v1/issues/{issue.id}/check", headers=editor_headers)
    body = response.json()
    found = {(f["code"], f["where"]) for f in body["findings"]}
    assert ("unsubscribe_link_missing", "template.html") in found
    assert ("unsubscribe_link_missing", "template.text") in found
    assert ("postal_address_not_shown", "template.html") in found
    assert body["ok"] is False


@pytest.mark.parametrize(
    ("base_url", "dev", "warned"),
    [
        ("http://news.example.com", False, True),
        ("https://news.example.com", False, False),
        ("http://127.0.0.1:8000", True, False),  # broadsheet dev runs on http by design
    ],
)
async def test_checks_warn_when_the_base_url_is_not_https_outside_dev(
    session: AsyncSession,
    engine: AsyncEngine,
    database_url: str,
    smtp_server: tuple[MailSink, int],
    editor_headers: dict[str, str],
    base_url: str,
    dev: bool,
    warned: bool,
) -> None:
    settings = make_settings(database_url, smtp_server[1], base_url=base_url, dev=dev)
    newsletter = await create_newsletter(session)
    story_overrides = [{"image_alt": "A chart"}, {}, {"image_alt": "A photo"}]
    issue = await create_issue(session, newsletter, stories=3, story_overrides=story_overrides)
    transport = ASGITransport(app=create_app(settings, engine=engine))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(f"/api/v1/issues/{issue.id}/check", headers=editor_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True  # a warning, not a blocker
    found = [f for f in body["findings"] if f["code"] == "base_url_not_https"]
    if not warned:
        assert found == []
        return
    (finding,) = found
    assert finding["severity"] == "warning"
    assert finding["where"] == "BROADSHEET_BASE_URL"
    assert "BROADSHEET_BASE_URL is http://news.example.com, not https" in finding["message"]
    assert "RFC 8058" in finding["message"]
