"""Transactional mail (confirmations, test sends): stored as ready bytes, sent by the worker.

A message is written to `outbox_message` in the same transaction as whatever caused it,
so it cannot be lost. The worker claims due rows with a lease (a crashed worker's rows
come back when the lease expires), sends them over one transport, and records each
outcome. It runs on the delivery engine's pieces: the same `Transport`, classifier and
`RetryPolicy` (one backoff formula, one `Backoff` while the server is down), over an
`OutboxStore`.
While no SMTP server answers, rows wait without using attempts.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.classify import Outcome, Verdict
from app.delivery.outcomes import Kind, OutboxItem
from app.delivery.retry import Backoff, RetryPolicy
from app.delivery.store import OutboxStore
from app.delivery.transport import Transport
from app.kit.aio import wait_any
from app.kit.clock import utcnow
from app.models import OutboxMessage, OutboxStatus
from app.settings import Settings

logger = logging.getLogger("broadsheet.outbox")

CLAIM_LIMIT = 20


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


class OutboxSender:
    """The worker's loop for transactional mail: claim a few, send them one by one."""

    def __init__(
        self,
        settings: Settings,
        store: OutboxStore,
        transport: Transport,
        *,
        poll_seconds: float = 0.5,
    ) -> None:
        self.lease_seconds = settings.lease_seconds
        self.store = store
        self.transport = transport
        self.policy = RetryPolicy.from_settings(settings)
        self.poll_seconds = poll_seconds
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
            await self.transport.close()

    async def run_once(self, stop: asyncio.Event) -> bool:
        """Claim and send one batch; True when there was something to do."""
        if self.backoff.is_down:
            return False
        items = await self.store.claim_due(limit=CLAIM_LIMIT, lease_seconds=self.lease_seconds)
        for index, item in enumerate(items):
            if stop.is_set() or self.backoff.is_down:
                # Hand the rest back untouched: no attempt used.
                await self.store.record(items[index:], Kind.release, "not attempted", 0)
                break
            await self._send_one(item)
        return bool(items)

    async def _send_one(self, item: OutboxItem) -> None:
        outcome = await self.transport.send(item.mail_from, item.rcpt_to, item.message)
        if outcome.before_send and outcome.verdict is Verdict.policy:
            # A refused login: mail waits for the credentials to be fixed, as while the
            # server is down, rather than failing a reader's confirmation.
            outcome = Outcome(Verdict.unreachable, outcome.code, outcome.reply, before_send=True)
        kind, retry_in = self.policy.settle(outcome, item.attempts, self.backoff)
        if kind is Kind.bounced or kind is Kind.policy:
            kind, retry_in = Kind.failed, 0.0  # one-off mail is not retried forever
        await self.store.record([item], kind, outcome.reply, retry_in)
