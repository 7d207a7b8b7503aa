"""The issue delivery engine: claim, personalise, send over a pool, record in batches.

One `DeliveryEngine` per worker process, a pipeline of three pieces on one event loop,
talking to the database only through a `Store` and to the mail system only through
`Transport`s (listmonk's manager has the same shape: a store and a messenger):

    Claimer --jobs--> SenderPool (one transport each) --results--> OutcomeWriter --> Store

- the claimer (`claimer.py`) leases batches of due deliveries and keeps house;
- the senders (`senders.py`), one per SMTP connection, SMTP_POOL_SIZE at first and up to
  SMTP_MAX_CONNECTIONS as `adaptive.py` finds it pays, check the caps, personalise the
  prepared issue (bytes substitution) and send, settling each outcome by the retry
  policy;
- the writer (`writer.py`) writes outcomes at least every 0.5 s and every 100, one
  transaction per batch. Senders wait while 100 outcomes are unwritten, so a hard crash
  repeats at most the connections open (SMTP_MAX_CONNECTIONS at most) + 100 messages.

On `stop`: no more claims, jobs not yet started are released (back to queued, no
attempt used), messages in flight finish, outcomes are flushed, and `run()` returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from app.delivery.claimer import Claimer
from app.delivery.retry import Backoff, RetryPolicy
from app.delivery.senders import DRAIN_SECONDS, IssueBook, Limiter, SenderPool
from app.delivery.store import Store
from app.delivery.transport import TransportFactory
from app.delivery.writer import OutcomeWriter
from app.settings import Settings

__all__ = ["DeliveryEngine", "worker_id"]

logger = logging.getLogger("broadsheet.delivery")

IDLE_POLL_SECONDS = 0.25  # SQLite, or PostgreSQL without LISTEN
LISTEN_POLL_SECONDS = 0.5  # PostgreSQL with LISTEN: a safety net (and due retries)


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        transports: TransportFactory,
        *,
        limiter: Limiter | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.owner = owner or worker_id()
        pool_size = settings.smtp_pool_size
        batch = settings.batch_size
        if settings.send_rate > 0:
            # Hold no more than a couple of seconds of capped sending at a time.
            batch = min(batch, max(pool_size, int(settings.send_rate * 2)))
        backoff = Backoff()
        book = IssueBook()
        self.writer = OutcomeWriter(store, self.owner)
        self.pool = SenderPool(
            pool_size,
            transports,
            book=book,
            writer=self.writer,
            policy=RetryPolicy.from_settings(settings),
            backoff=backoff,
            limiter=limiter,
            low_water=max(batch // 2, pool_size),
            ceiling=settings.smtp_max_connections,
        )
        self.claimer = Claimer(
            settings,
            store,
            self.owner,
            book=book,
            pool=self.pool,
            writer=self.writer,
            backoff=backoff,
            batch=batch,
        )

    async def run(self, stop: asyncio.Event) -> None:
        listening = await self.store.listen(self.claimer.wake.set)
        flusher = asyncio.create_task(self.writer.run(), name="outcome-writer")
        self.pool.start()
        try:
            await self.claimer.run(stop, LISTEN_POLL_SECONDS if listening else IDLE_POLL_SECONDS)
        finally:
            await self.pool.drain()
            self.writer.close()
            try:
                await asyncio.wait_for(flusher, timeout=DRAIN_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                logger.error("outcomes could not be written at shutdown; leases will expire")
            await self.store.unlisten()
