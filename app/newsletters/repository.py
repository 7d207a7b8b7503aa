from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Newsletter, Subscription, SubscriptionStatus


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


async def active_subscriber_counts(
    session: AsyncSession, newsletter_ids: list[int]
) -> dict[int, int]:
    """Active subscriptions per newsletter, for the dashboard's overview.

    One grouped count over ix_subscription_newsletter_status_id (newsletter, status, id):
    the index alone answers it.
    """
    if not newsletter_ids:
        return {}
    result = await session.execute(
        select(Subscription.newsletter_id, func.count())
        .where(
            Subscription.newsletter_id.in_(newsletter_ids),
            Subscription.status == SubscriptionStatus.active.value,
        )
        .group_by(Subscription.newsletter_id)
    )
    return {int(row[0]): int(row[1]) for row in result.all()}
