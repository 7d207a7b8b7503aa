"""What the worker hands the SMTP server: DKIM that covers SPEC section 6's headers, and
Message-IDs that name this installation and stay the same on every retry.

The bytes checked are the ones a real SMTP server (aiosmtpd) received, for an issue
delivery, a confirmation and a test send, all made by the API and the worker with DKIM
configured.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.kit.ids import installation_tag
from app.main import create_app
from app.models import Delivery, Event, Newsletter
from app.settings import Settings
from tests.conftest import make_settings
from tests.delivery.conftest import running_worker, wait_until
from tests.delivery.faulty_smtp import FaultyServer, FaultySink
from tests.factories import create_issue, create_readers, newsletter_body
from tests.rendering.test_dkim import (
    TAMPERINGS,
    TAMPERINGS_WITHOUT_REPLY_TO,
    assert_signature_holds_only_untouched,
    expected_h,
    key_pair,  # noqa: F401
    signed_header_list,
)

Maker = async_sessionmaker[AsyncSession]


@dataclass
class RecordingSink(FaultySink):
    """A faulty sink that also keeps every message offered, refused ones included."""

    offered: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.offered.append(envelope.original_content or envelope.content)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def recording() -> Iterator[FaultyServer]:
    server = FaultyServer(RecordingSink())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def signing(
    key_pair: tuple[Path, bytes],  # noqa: F811
    database_url: str,
    recording: FaultyServer,
) -> tuple[Settings, bytes]:
    """Settings that DKIM-sign through the recording server, and the public key record."""
    private, record = key_pair
    settings = make_settings(
        database_url,
        recording.port,
        smtp_url=recording.url,
        dkim_selector="bs2026",
        dkim_domain="news.example.com",
        dkim_private_key_file=private,
    )
    return settings, record


async def test_issue_confirmation_and_test_mail_arrive_signed_and_fail_when_tampered(
    signing: tuple[Settings, bytes],
    engine: AsyncEngine,
    sessionmaker: Maker,
    editor_headers: dict[str, str],
    recording: FaultyServer,
) -> None:
    settings, record = signing
    app = create_app(settings, engine=engine)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        created = await c.post(
            "/api/v1/newsletters",
            json=newsletter_body(reply_to="editor@example.com"),
            headers=editor_headers,
        )
        assert created.status_code == 201, created.text
        async with unit_of_work(sessionmaker) as session:
            newsletter = (await session.execute(select(Newsletter))).scalar_one()
            [reader] = await create_readers(session, newsletter, 1)
            issue = await create_issue(session, newsletter)
        sent = await c.post(f"/api/v1/issues/{issue.id}/send", headers=editor_headers)
        assert sent.status_code == 202, sent.text
        tested = await c.post(
            f"/api/v1/issues/{issue.id}/test",
            json={"to": ["tester@example.org"]},
            headers=editor_headers,
        )
        assert tested.status_code == 202, tested.text
        subscribed = await c.post(
            "/newsletters/weekly/subscribe", json={"email": "newcomer@example.org"}
        )
        assert subscribed.status_code == 202, subscribed.text
    async with running_worker(settings, engine):
        await _arrived(recording, 3)
    [delivered] = recording.sink.to(reader)
    [test_copy] = recording.sink.to("tester@example.org")
    [confirmation] = recording.sink.to("newcomer@example.org")

    for copy in (delivered, test_copy):
        assert signed_header_list(copy.data) == expected_h(reply_to=True, lists=True)
        assert_signature_holds_only_untouched(copy.data, record, TAMPERINGS)
    assert signed_header_list(confirmation.data) == expected_h(reply_to=True, lists=False)
    assert_signature_holds_only_untouched(confirmation.data, record, TAMPERINGS)

    # The delivery's Message-ID names it, its issue and this installation.
    tag = await installation_tag(engine)
    message_id = str(delivered.message["Message-ID"])
    assert re.fullmatch(rf"<d\d+\.i{issue.id}\.{tag}@testserver>", message_id)


async def test_a_confirmation_without_reply_to_breaks_when_one_is_added(
    signing: tuple[Settings, bytes],
    engine: AsyncEngine,
    editor_headers: dict[str, str],
    recording: FaultyServer,
) -> None:
    settings, record = signing
    app = create_app(settings, engine=engine)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        created = await c.post(
            "/api/v1/newsletters", json=newsletter_body(), headers=editor_headers
        )
        assert created.status_code == 201, created.text
        subscribed = await c.post("/newsletters/weekly/subscribe", json={"email": "n@example.org"})
        assert subscribed.status_code == 202, subscribed.text
    async with running_worker(settings, engine):
        [confirmation] = await _arrived(recording, 1)
    assert signed_header_list(confirmation) == expected_h(reply_to=False, lists=False)
    assert_signature_holds_only_untouched(confirmation, record, TAMPERINGS_WITHOUT_REPLY_TO)


async def _arrived(server: FaultyServer, count: int) -> list[bytes]:
    async def enough() -> bool:
        return server.sink.count() >= count

    await wait_until(enough)
    return [m.data for m in server.sink.messages]


async def test_a_retried_delivery_is_offered_again_with_the_same_message_id(
    database_url: str,
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    recording: FaultyServer,
) -> None:
    async with unit_of_work(sessionmaker) as session:
        newsletter = Newsletter(**{**newsletter_body(), "double_opt_in": False})
        session.add(newsletter)
        await session.flush()
        [reader] = await create_readers(session, newsletter, 1)
        issue = await create_issue(session, newsletter)
    recording.sink.add("data", "451 4.3.0 try again later", to=[reader], attempts=[1])
    sent = await client.post(f"/api/v1/issues/{issue.id}/send", headers=editor_headers)
    assert sent.status_code == 202, sent.text
    settings = make_settings(
        database_url, recording.port, smtp_url=recording.url, retry_backoff_seconds=0.1
    )
    async with running_worker(settings, engine):
        await _arrived(recording, 1)
    sink = recording.sink
    assert isinstance(sink, RecordingSink)
    offered = [
        email.message_from_bytes(data, policy=email.policy.default)["Message-ID"]
        for data in sink.offered
    ]
    async with sessionmaker() as session:
        row = (
            await session.execute(select(Delivery.id, Delivery.message_id, Delivery.attempts))
        ).one()
    assert row.attempts == 2
    assert len(offered) == 2
    assert offered[0] == offered[1] == row.message_id
    tag = await installation_tag(engine)
    assert row.message_id.endswith(f".{tag}@testserver>")
    # The Message-ID is a valid msg-id as the email package reads it.
    header = email.policy.default.header_factory("Message-ID", row.message_id)
    assert header.defects == ()
    # A bounce report naming it still leads to the delivery.
    bounced = await client.post(
        "/api/v1/webhooks/bounces",
        json={"email": reader, "kind": "hard", "message_id": row.message_id},
        headers={"Authorization": f"Bearer {settings.webhook_secret}"},
    )
    assert bounced.status_code == 200, bounced.text
    async with sessionmaker() as session:
        events = (await session.execute(select(Event.kind, Event.delivery_id))).all()
    assert [(kind, delivery) for kind, delivery in events] == [("bounce", row.id)]
