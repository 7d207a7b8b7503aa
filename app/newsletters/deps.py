"""`NewsletterDep`: the newsletter named by the `{slug}` path parameter, or 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from app.kit.deps import SessionDep
from app.models import Newsletter
from app.newsletters import service


async def get_newsletter(
    session: SessionDep, slug: Annotated[str, Path(max_length=64)]
) -> Newsletter:
    return await service.get(session, slug)


NewsletterDep = Annotated[Newsletter, Depends(get_newsletter)]
