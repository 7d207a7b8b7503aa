"""`NewsletterDep`: the newsletter named by the `{slug}` path parameter, or 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from app.kit.deps import SessionDep
from app.kit.errors import NotFound
from app.models import Newsletter
from app.newsletters import repository


async def get_newsletter(
    session: SessionDep, slug: Annotated[str, Path(max_length=64)]
) -> Newsletter:
    newsletter = await repository.get_by_slug(session, slug)
    if newsletter is None:
        raise NotFound(f"no newsletter with the slug {slug!r}")
    return newsletter


NewsletterDep = Annotated[Newsletter, Depends(get_newsletter)]
