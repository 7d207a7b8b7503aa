"""Transactional mail (confirmations, test sends): stored as ready bytes, sent by the worker.

A message is written to `outbox_message` in the same transaction as whatever caused it,
so it cannot be lost. The worker claims due rows with a lease (a crashed worker's rows
come back when the lease expires), sends them over one persistent SMTP connection, and
records each outcome. While no SMTP server answers, rows wait without using attempts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery.classify import Verdict, classify_exception
from app.delivery.smtp import Backoff, SmtpConnection, SmtpUnavailable
from app.kit.aio import wait_any
from app.kit.clock import utcnow
from app.models import OutboxMessage, OutboxStatus
from app.settings import Settings

logger = logging.getLogger("broadsheet.outbox")

_T = cast(Table, OutboxMessage.__table__)
CLAIM_LIMIT = 20


# About a minute of retries (0.1 s doubling to 2 s) before an outcome write gives up.
_RECORD_ATTEMPTS = 35


async def enqueue_mail(
    session: AsyncSession,
    *,
    kind: str,
    mail_from: str,
    rcpt_to: str,
    message: bytes,
    message_id: str,
    subscription_id: int | None = None,
) -> OutboxMessage:
    """Queue one ready-made message; the caller's transaction commits it."""
    row = OutboxMessage(
        kind=kind,
        mail_from=mail_from,
        rcpt_to=rcpt_to,
        message=message,
        message_id=message_id,
        subscription_id=subscription_id,
        status=OutboxStatus.queued.value,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    mail_from: str
    rcpt_to: str
    message: bytes
    attempts: int


async def claim_due(session: AsyncSession, *, limit: int, lease_seconds: float) -> list[OutboxItem]:
    """Lease up to `limit` due messages: queued and due, or sending with an expired lease."""
    now = utcnow()
    due = (
        select(_T.c.id)
        .where(
            or_(
                and_(
                    _T.c.status == OutboxStatus.queued.value,
                    _T.c.next_attempt_at <= now,
                ),
                and_(
                    _T.c.status == OutboxStatus.sending.value,
                    _T.c.lease_expires_at < now,
                ),
            )
        )
        .order_by(_T.c.id)
        .limit(limit)
        # Several workers on PostgreSQL: each row goes to one of them (no-op on SQLite).
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(_T)
        .where(_T.c.id.in_(due.scalar_subquery()))
        .values(
            status=OutboxStatus.sending.value,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        .returning(_T.c.id, _T.c.mail_from, _T.c.rcpt_to, _T.c.message, _T.c.attempts)
    )
    items = [OutboxItem(*row) for row in result.all()]
    items.sort(key=lambda item: item.id)
    return items


async def record(
    session: AsyncSession,
    item: OutboxItem,
    verdict: Verdict,
    reply: str,
    *,
    settings: Settings,
    delay: float = 0.0,
) -> None:
    now = utcnow()
    values: dict[str, object] = {"lease_expires_at": None, "last_reply": reply[:1000]}
    if verdict is Verdict.sent:
        values |= {"status": OutboxStatus.sent.value, "sent_at": now, "attempts": item.attempts + 1}
    elif verdict is Verdict.unreachable:
        values |= {
            "status": OutboxStatus.queued.value,
            "next_attempt_at": now + timedelta(seconds=delay),
        }
    elif verdict is Verdict.retry and item.attempts + 1 < settings.max_attempts:
        backoff = settings.retry_backoff_seconds * 2**item.attempts
        values |= {
            "status": OutboxStatus.queued.value,
            "attempts": item.attempts + 1,
            "next_attempt_at": now + timedelta(seconds=backoff),
        }
    else:
        # 5xx (bounce or policy) or out of attempts: one-off mail is not retried forever.
        values |= {"status": OutboxStatus.failed.value, "attempts": item.attempts + 1}
    await session.execute(update(_T).where(_T.c.id == item.id).values(**values))


class OutboxSender:
    """The worker's loop for transactional mail."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        poll_seconds: float = 0.5,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.poll_seconds = poll_seconds
        self.connection = SmtpConnection(
            settings.smtp_targets,
            timeout=settings.smtp_timeout_seconds,
            local_hostname=settings.base_host,
        )
        self.backoff = Backoff()
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    sent_any = await self.run_once(stop)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("outbox pass failed; trying again shortly")
                    sent_any = False
                if not sent_any:
                    await wait_any(stop, self.wake, self.poll_seconds)
                    self.wake.clear()
        finally:
            await self.connection.close()

    async def run_once(self, stop: asyncio.Event) -> bool:
        """Claim and send one batch; True when there was something to do."""
        if self.backoff.is_down:
            return False
        async with self.sessionmaker() as session, session.begin():
            items = await claim_due(
                session, limit=CLAIM_LIMIT, lease_seconds=self.settings.lease_seconds
            )
        for index, item in enumerate(items):
            if stop.is_set() or self.backoff.is_down:
                # Hand the rest back untouched: no attempt used.
                await self._record_many(items[index:], Verdict.unreachable, "not attempted", 0)
                break
            await self._send_one(item)
        return bool(items)

    async def _send_one(self, item: OutboxItem) -> None:
        try:
            reply = await self.connection.sendmail(item.mail_from, item.rcpt_to, item.message)
        except SmtpUnavailable as exc:
            delay = self.backoff.failed()
            logger.warning("SMTP unreachable, retrying in %.1fs: %s", delay, exc)
            await self._record_many([item], Verdict.unreachable, f"SMTP unreachable: {exc}", delay)
            return
        except Exception as exc:
            outcome = classify_exception(exc)
            if outcome.closes_connection:
                self.connection.drop()
            # A 421 is the server turning us away: wait as for one that is down.
            unreachable = outcome.verdict is Verdict.unreachable
            delay = self.backoff.failed() if unreachable else 0
            await self._record_many([item], outcome.verdict, outcome.reply, delay)
            return
        self.backoff.succeeded()
        await self._record_many([item], Verdict.sent, reply, 0)

    async def _record_many(
        self, items: list[OutboxItem], verdict: Verdict, reply: str, delay: float
    ) -> None:
        # The message may already be with the SMTP server: if writing that down fails
        # because the database is briefly locked or restarting, try again rather than
        # leave the row to be claimed and sent a second time.
        pause = 0.1
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                async with self.sessionmaker() as session, session.begin():
                    for item in items:
                        await record(
                            session, item, verdict, reply, settings=self.settings, delay=delay
                        )
                return
            except (OperationalError, InterfaceError, PoolTimeout, OSError):
                if attempt == _RECORD_ATTEMPTS:
                    raise
                logger.warning(
                    "outbox outcome not written (database unavailable), retrying in %.1fs",
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
