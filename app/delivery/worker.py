from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event,
    engine: AsyncEngine | None = None,
    with_scheduler: bool = True,
) -> None:
    await stop.wait()
