"""Newsletter rules: unique slugs, validated fields (the schemas do the field checks)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.kit.errors import Conflict, NotFound
from app.models import Newsletter
from app.newsletters import repository
from app.newsletters.schemas import NewsletterCreate, NewsletterUpdate


async def find(session: AsyncSession, slug: str) -> Newsletter | None:
    """The newsletter with this slug, or None."""
    return await repository.get_by_slug(session, slug)


async def get(session: AsyncSession, slug: str) -> Newsletter:
    """The newsletter with this slug, or 404."""
    newsletter = await repository.get_by_slug(session, slug)
    if newsletter is None:
        raise NotFound(f"no newsletter with the slug {slug!r}")
    return newsletter


async def list_page(session: AsyncSession, *, after_id: int, limit: int) -> list[Newsletter]:
    """Newsletters by id after `after_id` (keyset pages)."""
    return await repository.list_page(session, after_id=after_id, limit=limit)


def _slug_conflict(slug: str) -> Conflict:
    return Conflict(f"a newsletter with the slug {slug!r} already exists")


async def create(session: AsyncSession, data: NewsletterCreate) -> Newsletter:
    if await repository.slug_taken(session, data.slug):
        raise _slug_conflict(data.slug)
    newsletter = Newsletter(**data.model_dump())
    session.add(newsletter)
    try:
        await session.flush()
    except IntegrityError as exc:
        # Lost a race for the slug; the request's transaction is rolled back with the 409.
        raise _slug_conflict(data.slug) from exc
    return newsletter


async def update(
    session: AsyncSession, newsletter: Newsletter, data: NewsletterUpdate
) -> Newsletter:
    changes = data.changes()
    slug = changes.get("slug")
    if slug is not None and slug != newsletter.slug:
        if await repository.slug_taken(session, slug, except_id=newsletter.id):
            raise _slug_conflict(slug)
    schedule_moved = any(
        key in changes and changes[key] != getattr(newsletter, key)
        for key in ("schedule_cron", "timezone")
    )
    for key, value in changes.items():
        setattr(newsletter, key, value)
    if schedule_moved:
        # The scheduler looks only at ticks after `schedule_checked_at`: moving it to now
        # makes a new schedule fire from now on, never for the times of the new expression
        # that lie between the old schedule's last tick and now (inside the grace window).
        newsletter.schedule_checked_at = utcnow()
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _slug_conflict(str(slug)) from exc
    return newsletter
