"""The confirmation email: written to the outbox with the subscription, built to SPEC section 6."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.links import confirm_subscription_id
from app.kit.tokens import Signer
from app.models import Newsletter, Subscription
from tests.conftest import SECRET
from tests.factories import (
    confirm_link,
    count,
    outbox_rows,
    subscription_of,
)
from tests.factories import (
    create_gazette as create_newsletter,
)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_confirmation_is_multipart_alternative_text_first_with_the_link_in_both(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    response = await client.post(
        "/newsletters/weekly/subscribe", json={"email": "rita@example.com", "name": "Rita"}
    )
    assert response.status_code == 202
    (row,) = await outbox_rows(session)
    subscription = await subscription_of(session, "rita@example.com")
    assert subscription is not None
    raw = row.message
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line endings only
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert msg["From"] == "The Weekly Gazette <news@example.com>"
    assert msg["To"] == "Rita <rita@example.com>"
    assert msg["Subject"] == "Confirm your subscription to The Weekly Gazette"
    assert msg["Date"]
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == row.message_id
    assert re.fullmatch(rf"<confirm\.{subscription.id}\.[0-9a-f]{{12}}@testserver>", row.message_id)

    url = confirm_link(raw)
    assert url.startswith("http://testserver/confirm/")
    token = url.rsplit("/", 1)[1]
    assert confirm_subscription_id(Signer(SECRET.encode()), token, 3600) == subscription.id
    text = parts[0].get_content()
    html = parts[1].get_content()
    assert url in text
    assert f'href="{url}"' in html
    assert "1 Main Street, Springfield" in text
    assert "1 Main Street, Springfield" in html
    # premailer inlined the CSS: styles sit on the elements, only @media may stay behind.
    assert 'style="' in html
    for block in html.split("<style")[1:]:
        css = block.split("</style>")[0]
        assert "@media" in css
        assert ".content {" not in css.split("@media")[0]


async def test_non_ascii_names_are_encoded_and_markup_is_escaped(
    client: AsyncClient, session: AsyncSession
) -> None:
    await create_newsletter(
        session, slug="gazette", name="Gazette für Köln", from_name="Jörg & <Co>"
    )
    await client.post(
        "/newsletters/gazette/subscribe",
        json={"email": "zoë@example.com", "name": "Zoë <script>alert(1)</script>"},
    )
    # A non-ASCII local part is refused without SMTPUTF8 (SPEC section 6) ...
    assert await count(session, Subscription) == 0
    await client.post(
        "/newsletters/gazette/subscribe",
        json={"email": "zoe@bücher.example", "name": "Zoë <script>alert(1)</script>"},
    )
    (row,) = await outbox_rows(session)
    assert row.rcpt_to == "zoe@xn--bcher-kva.example"
    raw = row.message
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    assert b"=?utf-8?" in header_block.lower()
    msg = parse(raw)
    assert msg["Subject"] == "Confirm your subscription to Gazette für Köln"
    (to,) = msg["To"].addresses
    assert to.display_name == "Zoë <script>alert(1)</script>"
    assert to.addr_spec == "zoe@xn--bcher-kva.example"
    html = msg.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "<script>" not in content
    assert "Zoë &lt;script&gt;" in content
    assert "Jörg &amp; &lt;Co&gt;" in content


async def test_confirmation_is_in_the_same_transaction_as_the_subscription(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    """A subscription never exists without its confirmation mail, nor the mail without it."""
    for i in range(3):
        await client.post("/newsletters/weekly/subscribe", json={"email": f"t{i}@example.com"})
    rows = await outbox_rows(session)
    assert len(rows) == 3
    for row in rows:
        subscription = await subscription_of(session, row.rcpt_to)
        assert subscription is not None
        assert row.subscription_id == subscription.id
        assert subscription.confirmation_sent_at is not None
