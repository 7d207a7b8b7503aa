from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Newsletter


async def get_by_slug(session: AsyncSession, slug: str) -> Newsletter | None:
    result = await session.execute(select(Newsletter).where(Newsletter.slug == slug))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, newsletter_id: int) -> Newsletter | None:
    return await session.get(Newsletter, newsletter_id)


async def slug_taken(session: AsyncSession, slug: str, *, except_id: int | None = None) -> bool:
    stmt = select(Newsletter.id).where(Newsletter.slug == slug)
    if except_id is not None:
        stmt = stmt.where(Newsletter.id != except_id)
    return (await session.execute(stmt.limit(1))).first() is not None


async def list_page(session: AsyncSession, *, after_id: int, limit: int) -> list[Newsletter]:
    result = await session.execute(
        select(Newsletter).where(Newsletter.id > after_id).order_by(Newsletter.id).limit(limit + 1)
    )
    return list(result.scalars())
