"""Subscribe -> the real worker sends the confirmation over SMTP -> confirm -> unsubscribe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.kit.links import unsubscribe_url
from app.models import Newsletter
from app.settings import Settings
from app.worker import run_worker
from tests.factories import confirm_link, subscription_of
from tests.smtp import Captured, MailSink


@pytest.fixture
async def worker(settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop=stop, engine=engine, with_scheduler=False))
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def wait_for_mail(mailbox: MailSink, address: str, timeout: float = 20.0) -> Captured:
    """Poll without blocking the event loop the worker runs on (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mailbox.to(address)
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no mail for {address} within {timeout}s")


async def test_a_reader_subscribes_gets_the_mail_over_smtp_confirms_and_leaves(
    app: FastAPI,
    client: AsyncClient,
    session: AsyncSession,
    newsletter: Newsletter,
    mailbox: MailSink,
    worker: None,
) -> None:
    response = await client.post(
        "/newsletters/weekly/subscribe", data={"email": "e2e@example.com", "name": "Eve"}
    )
    assert response.status_code in (200, 202)

    mail = await wait_for_mail(mailbox, "e2e@example.com")
    assert mail.mail_from == "news@example.com"
    assert mail.message["Subject"] == "Confirm your subscription to The Weekly Gazette"
    link = confirm_link(mail.data)

    page = await client.get(link.removeprefix("http://testserver"))
    assert page.status_code == 200
    assert ">Confirm</button>" in page.text
    confirmed = await client.post(link.removeprefix("http://testserver"))
    assert confirmed.status_code == 200
    subscription = await subscription_of(session, "e2e@example.com")
    assert subscription is not None
    assert subscription.status == "active"

    url = unsubscribe_url("", app.state.signer, subscription.id)
    left = await client.post(url, content=b"List-Unsubscribe=One-Click")
    assert left.status_code == 200
    subscription = await subscription_of(session, "e2e@example.com")
    assert subscription is not None
    assert subscription.status == "unsubscribed"
