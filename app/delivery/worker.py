"""`broadsheet worker`: issue deliveries, transactional mail and the scheduler loop.

Everything runs as tasks on one event loop until `stop` is set (SIGTERM or SIGINT);
then each part drains: nothing claimed is left behind leased, outcomes are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.outbox import OutboxSender
from app.delivery.ratecap import RateCap
from app.delivery.sqlstore import SqlOutboxStore, SqlStore
from app.delivery.transport import smtp_transports
from app.kit.db import create_engine, create_sessionmaker
from app.settings import Settings

logger = logging.getLogger("broadsheet.worker")

SCHEDULER_INTERVAL_SECONDS = 5.0

SchedulerPass = Callable[[Settings, async_sessionmaker[AsyncSession]], Awaitable[Any]]


def _scheduler_pass() -> SchedulerPass | None:
    """`app.scheduling.runner.run_scheduler_pass`, when the scheduling feature provides it."""
    try:
        module = importlib.import_module("app.scheduling.runner")
    except ImportError:
        logger.warning("scheduler module could not be imported; cron ticks are not run")
        return None
    func = getattr(module, "run_scheduler_pass", None)
    return func if callable(func) else None


async def _scheduler_loop(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        run_pass = _scheduler_pass()
        if run_pass is not None:
            try:
                await run_pass(settings, sessionmaker)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler pass failed; the next one runs shortly")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SCHEDULER_INTERVAL_SECONDS)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event,
    engine: AsyncEngine | None = None,
    with_scheduler: bool = True,
) -> None:
    """Run until `stop` is set, then drain and return (within the SIGTERM budget)."""
    owns_engine = engine is None
    engine = engine or create_engine(settings.database_url, pool_size=4)
    sessionmaker = create_sessionmaker(engine)
    tasks: list[asyncio.Task[None]] = []
    try:
        from app.delivery.engine import DeliveryEngine

        # The engine and the outbox run on the same pieces: one transport factory (one
        # connection set-up), one classifier and retry policy, stores over one database.
        transports = smtp_transports(settings)
        ratecap = RateCap(settings, sessionmaker)
        delivery = DeliveryEngine(
            settings,
            SqlStore(engine, sessionmaker),
            transports,
            limiter=ratecap if ratecap.enabled else None,
        )
        outbox = OutboxSender(settings, SqlOutboxStore(sessionmaker), transports())
        tasks.append(asyncio.create_task(delivery.run(stop), name="deliveries"))
        tasks.append(asyncio.create_task(outbox.run(stop), name="outbox"))
        if with_scheduler:
            tasks.append(
                asyncio.create_task(_scheduler_loop(settings, sessionmaker, stop), name="scheduler")
            )
        logger.info("worker started (%s)", ", ".join(t.get_name() for t in tasks))
        await _supervise(tasks, stop)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if owns_engine:
            await engine.dispose()
        logger.info("worker stopped")


async def _supervise(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for every part to finish after `stop`; a part that dies early is a bug: stop all."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None:
                logger.error("worker part %s crashed", task.get_name(), exc_info=exc)
                stop.set()
            elif not stop.is_set():
                logger.error("worker part %s ended before stop", task.get_name())
                stop.set()
