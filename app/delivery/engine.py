"""The issue delivery engine (claim, personalise, send over a pool, record in batches)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
