"""Fixtures for the delivery engine: a fault-injecting SMTP server and a running worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from app.worker import run_worker
from tests.conftest import make_settings
from tests.delivery.faulty_smtp import FaultyServer


@pytest.fixture
def faulty() -> Iterator[FaultyServer]:
    server = FaultyServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def faulty_settings(database_url: str, faulty: FaultyServer) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"smtp_url": faulty.url, "retry_backoff_seconds": 0.1}
        values.update(overrides)
        return make_settings(database_url, faulty.port, **values)

    return build


RunningWorker = Callable[[Settings], Any]


@asynccontextmanager
async def running_worker(
    settings: Settings, engine: AsyncEngine, *, with_scheduler: bool = False
) -> AsyncIterator[asyncio.Event]:
    """The worker as a task of this event loop; stopped (drained) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(settings, stop=stop, engine=engine, with_scheduler=with_scheduler)
    )
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, every: float = 0.05
) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds (never a timed assert)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")
