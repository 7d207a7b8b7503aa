"""An XSS corpus typed into every editor and subscriber field: nothing executable reaches
an email (either part), the archive, the issue page, the feed or a public page; click
tracking redirects only to the issue's own links (SPEC sections 3, 6, 8)."""

from __future__ import annotations

import email
import email.policy
import xml.etree.ElementTree as ET
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit import links
from app.kit.clock import utcnow
from app.kit.tokens import Signer
from app.models import Issue, OutboxMessage, Subscription
from app.settings import Settings
from tests.conftest import SECRET

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    '<a href="javascript:alert(4)">x</a>',
    "<a href='&#106;avascript:alert(5)'>x</a>",
    "<iframe src=javascript:alert(6)></iframe>",
    "<details open ontoggle=alert(7)>",
    "<style>@import 'javascript:alert(8)';</style>",
    '<math><mi xlink:href="javascript:alert(9)">x</mi></math>',
    '<object data="data:text/html,<script>alert(10)</script>"></object>',
    "<form action=javascript:alert(11)><button>x</button></form>",
    "</title><script>alert(12)</script>",
    "]]><script>alert(13)</script>",
    "{{ settings.secret_key }}{% for x in ().__class__.__base__.__subclasses__() %}{% endfor %}",
    '<img src="https://ok.example/a.png" onerror="alert(14)">',
    "<body onload=alert(15)>",
    '<base href="javascript:alert(16)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(17)">',
]
MARKDOWN_PAYLOADS = [
    "[click](javascript:alert(20))",
    "[click](JaVaScRiPt:alert(21))",
    "![img](javascript:alert(22))",
    "[click](vbscript:msgbox(23))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgyNCk8L3NjcmlwdD4=)",
    '<a href="java&#x09;script:alert(25)">x</a>',
    "[x](<javascript:alert(26)>)",
    "[ref]\n\n[ref]: javascript:alert(27)",
]
ALL = " ".join(PAYLOADS)
BAD_SCHEMES = ("javascript:", "vbscript:", "data:text/html", "livescript:")
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "data"}


class ExecutableFinder(HTMLParser):
    """Collects everything a browser or mail client could run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed", "base", "frame", "applet"):
            self.found.append(f"<{tag}>")
        if tag == "meta" and any(k == "http-equiv" for k, _ in attrs):
            self.found.append("<meta http-equiv>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if value is None:
                continue
            squashed = "".join(value.split()).lower()
            if name in URL_ATTRIBUTES and squashed.startswith(BAD_SCHEMES):
                self.found.append(f"{tag} {name}={value[:40]}")
            if name == "style" and ("javascript:" in squashed or "expression(" in squashed):
                self.found.append(f"{tag} style={value[:40]}")

    handle_startendtag = handle_starttag


def executable(html: str) -> list[str]:
    finder = ExecutableFinder()
    finder.feed(html)
    finder.close()
    return finder.found


def assert_safe_html(html: str, where: str) -> None:
    assert executable(html) == [], where
    assert SECRET not in html, f"{where}: the secret key leaked through a template"


def assert_safe_email(data: bytes, where: str) -> None:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    assert_safe_html(html_part.get_content(), f"{where} (HTML part)")
    text = text_part.get_content()
    assert SECRET not in text
    # A text part is never run, but it must not grow HTML the editor did not write
    # (e.g. the sanitiser's output pasted into it).
    assert "<script" not in text.lower() or "<script>alert(1)</script>" in ALL


def fields(payload: str) -> dict[str, Any]:
    return {
        "subject": f"S {payload}"[:300],
        "preheader": f"P {payload}"[:300],
        "intro": f"I {payload}\n\n{MARKDOWN_PAYLOADS[0]}",
        "outro": f"O {payload}\n\n" + "\n\n".join(MARKDOWN_PAYLOADS),
        "stories": [
            {
                "title": f"T {payload}"[:300],
                "body": f"B {payload}\n\n" + "\n\n".join(MARKDOWN_PAYLOADS),
                "url": 'https://example.com/story?q="><script>alert(30)</script>',
                "source": f"src {payload}"[:200],
                "image_url": 'https://example.com/i.png?"onerror=alert(31)',
            }
        ],
    }


async def create_world(client: AsyncClient, headers: dict[str, str], slug: str) -> dict[str, Any]:
    newsletter = await client.post(
        "/api/v1/newsletters",
        json={
            "slug": slug,
            "name": f"N {ALL}"[:200],
            "description": ALL,
            "from_name": f"F {PAYLOADS[1]}",
            "from_email": "news@example.com",
            "postal_address": ALL[:1000],
            "track_clicks": True,
            "track_opens": True,
            "double_opt_in": True,
        },
        headers=headers,
    )
    assert newsletter.status_code == 201, newsletter.text
    issue = await client.post(
        f"/api/v1/newsletters/{slug}/issues", json=fields(ALL), headers=headers
    )
    assert issue.status_code == 201, issue.text
    created: dict[str, Any] = issue.json()
    return created


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "javascript:alert(1)"),
        ("url", " JAVASCRIPT:alert(1)"),
        ("url", "data:text/html,<script>alert(1)</script>"),
        ("image_url", "javascript:alert(1)"),
        ("url", "//evil.example/x"),
    ],
)
async def test_a_story_link_that_is_not_http_is_refused(
    client: AsyncClient, admin_headers: dict[str, str], field: str, value: str
) -> None:
    await create_world(client, admin_headers, "refuse")
    story = {"title": "t", "body": "b", field: value}
    response = await client.post(
        "/api/v1/newsletters/refuse/issues",
        json={"subject": "s", "stories": [story]},
        headers=admin_headers,
    )
    assert response.status_code == 422


async def test_nothing_executable_reaches_the_preview_of_an_issue(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    issue = await create_world(client, admin_headers, "preview")
    for fmt in ("html", "eml"):
        response = await client.get(
            f"/api/v1/issues/{issue['id']}/preview", params={"format": fmt}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        if fmt == "html":
            assert_safe_html(response.text, "preview html")
        else:
            assert_safe_email(response.content, "preview eml")


async def test_nothing_executable_reaches_the_archive_the_issue_page_or_the_feed(
    client: AsyncClient, admin_headers: dict[str, str], session: AsyncSession
) -> None:
    issue = await create_world(client, admin_headers, "archive")
    sub = await client.post(
        "/api/v1/newsletters/archive/subscribers",
        json={"email": "reader@example.org", "name": PAYLOADS[0], "consent": "test"},
        headers=admin_headers,
    )
    assert sub.status_code == 201, sub.text
    sent = await client.post(f"/api/v1/issues/{issue['id']}/send", headers=admin_headers)
    assert sent.status_code == 202, sent.text
    # Arrange: the worker's part is not under test here; mark the issue sent.
    await session.execute(
        update(Issue).where(Issue.id == issue["id"]).values(status="sent", sent_at=utcnow())
    )
    await session.commit()
    for path in (
        "/newsletters/archive/archive",
        f"/newsletters/archive/issues/{issue['number']}",
    ):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert_safe_html(response.text, path)
        assert "alert(2)" in response.text  # the text is there, only inert
        assert "reader@example.org" not in response.text  # no personal data on the web
    feed = await client.get("/newsletters/archive/feed.xml")
    assert feed.status_code == 200
    root = ET.fromstring(feed.content)  # well-formed XML, whatever the titles held
    for element in root.iter():
        if element.text and element.get("type") == "html":
            assert_safe_html(element.text, f"feed <{element.tag}>")
        assert_safe_html(ET.tostring(element, encoding="unicode"), "feed markup")


async def test_nothing_executable_reaches_a_confirmation_email_or_the_public_pages(
    client: AsyncClient,
    admin_headers: dict[str, str],
    session: AsyncSession,
    settings: Settings,
) -> None:
    await create_world(client, admin_headers, "public")
    form = await client.get("/newsletters/public/subscribe")
    assert form.status_code == 200
    assert_safe_html(form.text, "subscribe form")
    for name in PAYLOADS:
        for kind in ("json", "form"):
            address = f"r{PAYLOADS.index(name)}{kind}@example.org"
            body = {"email": address, "name": name[:200]}
            response = await (
                client.post("/newsletters/public/subscribe", json=body)
                if kind == "json"
                else client.post("/newsletters/public/subscribe", data=body)
            )
            assert response.status_code in (200, 202, 400, 422), response.text[:300]
            if kind == "form":
                assert_safe_html(response.text, f"subscribe answer for {name!r}")
    outbox = (await session.execute(select(OutboxMessage))).scalars().all()
    assert outbox, "no confirmation was queued"
    for row in outbox:
        assert_safe_email(row.message, f"confirmation to {row.rcpt_to}")
    assert any(b"alert" in row.message for row in outbox)  # names arrived, inert
    signer = Signer(settings.secret, settings.previous_secrets)
    subscriptions = (await session.execute(select(Subscription))).scalars().all()
    for subscription in subscriptions:
        confirm_path = f"/confirm/{links.confirm_token(signer, subscription.id)}"
        confirm = await client.get(confirm_path)
        assert confirm.status_code == 200, confirm.text[:300]
        assert_safe_html(confirm.text, "confirm page")
        confirmed = await client.post(confirm_path)
        assert confirmed.status_code == 200, confirmed.text[:300]
        assert_safe_html(confirmed.text, "confirmed page")
        token = links.unsubscribe_token(signer, subscription.id)
        page = await client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
        assert_safe_html(page.text, "unsubscribe page")
        done = await client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        assert_safe_html(done.text, "unsubscribed page")
    for bad in ("/confirm/<script>alert(1)</script>", "/unsubscribe/%3Cscript%3Ealert(1)"):
        response = await client.get(bad)
        assert response.status_code in (400, 404)
        assert_safe_html(response.text, bad)


async def test_subscriber_attributes_never_reach_a_page_or_mail_unescaped(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    issue = await create_world(client, admin_headers, "attrs")
    response = await client.post(
        "/api/v1/newsletters/attrs/subscribers",
        json={
            "email": "attr@example.org",
            "name": PAYLOADS[1],
            "attributes": {"company": PAYLOADS[0], "x": PAYLOADS[2]},
            "consent": "test",
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    export = await client.get("/api/v1/newsletters/attrs/subscribers/export", headers=admin_headers)
    assert export.status_code == 200
    # CSV export: a cell starting with = + - @ could run as a spreadsheet formula.
    for line in export.text.splitlines()[1:]:
        for cell in line.split(","):
            assert not cell.strip('"').startswith(("=", "+", "@")), cell
    preview = await client.get(
        f"/api/v1/issues/{issue['id']}/preview", params={"format": "eml"}, headers=admin_headers
    )
    assert_safe_email(preview.content, "preview with attributes")


async def test_click_tracking_is_never_an_open_redirect(
    client: AsyncClient, admin_headers: dict[str, str], session: AsyncSession, settings: Settings
) -> None:
    issue = await create_world(client, admin_headers, "clicks")
    await client.post(
        "/api/v1/newsletters/clicks/subscribers",
        json={"email": "clicker@example.org", "consent": "test"},
        headers=admin_headers,
    )
    sent = await client.post(f"/api/v1/issues/{issue['id']}/send", headers=admin_headers)
    assert sent.status_code == 202, sent.text
    from app.models import Delivery

    delivery = (await session.execute(select(Delivery))).scalars().first()
    assert delivery is not None
    signer = Signer(settings.secret, settings.previous_secrets)
    first = await client.get(f"/t/c/{links.click_token(signer, delivery.id, 0)}")
    assert first.status_code == 302
    target = first.headers["location"]
    assert target.startswith(("https://", "http://"))
    assert "evil" not in target
    for token in (
        links.click_token(signer, delivery.id, 999),
        links.click_token(signer, delivery.id + 1000, 0),
        links.click_token(Signer(b"attacker-key-0123456789abcdef"), delivery.id, 0),
        links.open_token(signer, delivery.id),
        "https%3A%2F%2Fevil.example",
        "..%2F..%2Fevil.example",
    ):
        response = await client.get(f"/t/c/{token}")
        assert response.status_code == 404, (token, response.status_code)
        assert "location" not in response.headers
    for url in (
        "/t/c/x?next=https://evil.example",
        "/t/c//evil.example",
        "/t/c/%2F%2Fevil.example",
    ):
        response = await client.get(url)
        assert response.status_code in (404, 307, 308)
        assert "evil.example" not in response.headers.get("location", "")
