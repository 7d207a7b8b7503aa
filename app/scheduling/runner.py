from __future__ import annotations

from app.settings import Settings


async def run_due_once(settings: Settings) -> list[str]:
    return []
