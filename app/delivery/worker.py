"""Delivery's part of `broadsheet worker`: the issue engine and the outbox as tasks.

Both run on the same pieces: one transport factory (one connection set-up), one
classifier and retry policy, stores over one database. The entry point (`app.worker`)
runs them beside the scheduler loop and stops them with `stop`; each drains on its own
(nothing claimed is left leased, outcomes are written).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.engine import DeliveryEngine
from app.delivery.outbox import OutboxSender
from app.delivery.ratecap import RateCap
from app.delivery.sqlstore import SqlOutboxStore, SqlStore
from app.delivery.transport import smtp_transports
from app.settings import Settings


def start_delivery(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    stop: asyncio.Event,
) -> list[asyncio.Task[None]]:
    """Start the issue deliveries and the outbox; each task returns after `stop`, drained."""
    transports = smtp_transports(settings)
    ratecap = RateCap(settings, sessionmaker)
    delivery = DeliveryEngine(
        settings,
        SqlStore(engine, sessionmaker),
        transports,
        limiter=ratecap if ratecap.enabled else None,
    )
    outbox = OutboxSender(settings, SqlOutboxStore(sessionmaker), transports())
    return [
        asyncio.create_task(delivery.run(stop), name="deliveries"),
        asyncio.create_task(outbox.run(stop), name="outbox"),
    ]
