"""With DKIM configured, the confirmation email is signed like issue mail."""

from __future__ import annotations

from pathlib import Path

from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.main import create_app
from app.models import OutboxMessage
from tests.conftest import make_settings
from tests.factories import newsletter_body
from tests.rendering.test_dkim import (
    TAMPERINGS_WITHOUT_REPLY_TO,
    assert_signature_holds_only_untouched,
    expected_h,
    key_pair,  # noqa: F401
    signed_header_list,
)
from tests.smtp import MailSink


async def test_confirmation_email_is_dkim_signed_and_any_header_added_breaks_it(
    key_pair: tuple[Path, bytes],  # noqa: F811
    database_url: str,
    smtp_server: tuple[MailSink, int],
    engine: AsyncEngine,
    session: AsyncSession,
    editor_headers: dict[str, str],
) -> None:
    private, record = key_pair
    settings = make_settings(
        database_url,
        smtp_server[1],
        dkim_selector="bs2026",
        dkim_domain="news.example.com",
        dkim_private_key_file=private,
    )
    app = create_app(settings, engine=engine)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        created = await c.post(
            "/api/v1/newsletters",
            json=newsletter_body(from_email="desk@news.example.com"),
            headers=editor_headers,
        )
        assert created.status_code == 201
        subscribed = await c.post(
            "/newsletters/weekly/subscribe", json={"email": "reader@example.org"}
        )
        assert subscribed.status_code == 202
    message = (await session.execute(select(OutboxMessage.message))).scalar_one()
    assert message.startswith(b"DKIM-Signature: ")
    # Every SPEC header it has is signed; Reply-To and the List-* headers, which it has
    # not, are named once each, so none can be added on the way.
    assert signed_header_list(message) == expected_h(reply_to=False, lists=False)
    assert_signature_holds_only_untouched(message, record, TAMPERINGS_WITHOUT_REPLY_TO)
