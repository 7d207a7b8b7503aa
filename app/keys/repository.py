from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey


async def get_active_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    return result.scalar_one_or_none()


async def touch(session: AsyncSession, key_id: int, when: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))


async def get(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def list_page(session: AsyncSession, *, after_id: int, limit: int) -> list[ApiKey]:
    result = await session.execute(
        select(ApiKey).where(ApiKey.id > after_id).order_by(ApiKey.id).limit(limit + 1)
    )
    return list(result.scalars())


async def find_by_prefix(session: AsyncSession, prefix: str) -> list[ApiKey]:
    """The keys whose shown prefix starts with `prefix` (at most a few: prefixes are random)."""
    result = await session.execute(
        select(ApiKey)
        .where(ApiKey.prefix.startswith(prefix, autoescape=True))
        .order_by(ApiKey.id)
        .limit(10)
    )
    return list(result.scalars())


async def revoke(session: AsyncSession, key: ApiKey, when: datetime) -> None:
    key.revoked_at = when
    await session.flush()
