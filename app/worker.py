"""`broadsheet worker`: issue deliveries, transactional mail and the scheduler loop.

The entry layer wires the two features together (delivery sits below scheduling, so
neither may start the other). Everything runs as tasks on one event loop until `stop`
is set (SIGTERM or SIGINT); then each part drains: nothing claimed is left behind
leased, outcomes are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.worker import start_delivery
from app.kit.db import create_engine, create_sessionmaker
from app.scheduling.runner import run_scheduler_pass
from app.settings import Settings

logger = logging.getLogger("broadsheet.worker")

SCHEDULER_INTERVAL_SECONDS = 5.0


async def _scheduler_loop(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await run_scheduler_pass(settings, sessionmaker)
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
        tasks.extend(start_delivery(settings, engine, sessionmaker, stop))
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
