"""Transactional mail: stored bytes sent by the worker, retried, never lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.outbox import enqueue_mail
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import OutboxMessage
from app.settings import Settings
from tests.delivery.conftest import running_worker, wait_until
from tests.delivery.faulty_smtp import FaultyServer

MESSAGE = (
    b"From: Broadsheet <news@example.org>\r\nTo: reader@example.com\r\n"
    b"Subject: Please confirm\r\nMessage-ID: <confirm.1@example.org>\r\n\r\nConfirm please.\r\n"
)


async def _enqueue(sessionmaker: async_sessionmaker[AsyncSession], rcpt: str) -> int:
    async with unit_of_work(sessionmaker) as session:
        row = await enqueue_mail(
            session,
            kind="confirmation",
            mail_from="news@example.org",
            rcpt_to=rcpt,
            message=MESSAGE,
            message_id="<confirm.1@example.org>",
        )
        return row.id


async def _row(sessionmaker: async_sessionmaker[AsyncSession], row_id: int) -> OutboxMessage:
    async with sessionmaker() as session:
        row = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.id == row_id))
        ).scalar_one()
        return row


async def test_queued_transactional_mail_is_delivered_once(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    row_id = await _enqueue(sessionmaker, "reader@example.com")
    async with running_worker(faulty_settings(), engine):

        async def sent() -> bool:
            return (await _row(sessionmaker, row_id)).status == "sent"

        await wait_until(sent)
    assert [m.rcpt_tos for m in faulty.sink.messages] == [["reader@example.com"]]
    assert faulty.sink.messages[0].data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    row = await _row(sessionmaker, row_id)
    assert row.attempts == 1
    assert row.sent_at is not None


async def test_transactional_mail_waits_while_smtp_is_down_without_using_attempts(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    faulty.stop()
    row_id = await _enqueue(sessionmaker, "reader@example.com")
    async with running_worker(faulty_settings(max_attempts=1), engine):

        async def tried() -> bool:
            row = await _row(sessionmaker, row_id)
            return row.last_reply is not None and "unreachable" in row.last_reply

        await wait_until(tried)
        faulty.start()

        async def sent() -> bool:
            return (await _row(sessionmaker, row_id)).status == "sent"

        await wait_until(sent, timeout=30)
    assert len(faulty.sink.to("reader@example.com")) == 1


async def test_transactional_mail_retries_4xx_then_fails_on_5xx(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    faulty.sink.add("rcpt", "451 4.3.0 try again later", to=["slow@example.com"], attempts=[1])
    faulty.sink.add("rcpt", "550 5.1.1 no such user", to=["gone@example.com"])
    slow = await _enqueue(sessionmaker, "slow@example.com")
    gone = await _enqueue(sessionmaker, "gone@example.com")
    async with running_worker(faulty_settings(), engine):

        async def settled() -> bool:
            return (await _row(sessionmaker, slow)).status == "sent" and (
                await _row(sessionmaker, gone)
            ).status == "failed"

        await wait_until(settled)
    slow_row = await _row(sessionmaker, slow)
    assert slow_row.attempts == 2
    gone_row = await _row(sessionmaker, gone)
    assert gone_row.last_reply is not None
    assert gone_row.last_reply.startswith("550 5.1.1")
    assert len(faulty.sink.to("slow@example.com")) == 1
    assert faulty.sink.to("gone@example.com") == []


async def test_a_message_left_leased_by_a_crashed_worker_is_sent_once_its_lease_expires(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    row_id = await _enqueue(sessionmaker, "reader@example.com")
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(status="sending", lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    async with running_worker(faulty_settings(), engine):

        async def sent() -> bool:
            return (await _row(sessionmaker, row_id)).status == "sent"

        await wait_until(sent)
    assert len(faulty.sink.to("reader@example.com")) == 1
