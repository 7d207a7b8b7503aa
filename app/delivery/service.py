"""Starting and controlling a send (filled in by the delivery engine work)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Issue
from app.settings import Settings


async def start_send(session: AsyncSession, issue: Issue, *, settings: Settings) -> int:
    """Freeze the rendered issue, enqueue one delivery per active subscription, set the
    issue `sending`; the number of recipients. Raises Conflict when the issue cannot be
    sent from its current state. The caller's transaction commits it."""
    raise NotImplementedError
