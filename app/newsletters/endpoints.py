from __future__ import annotations

from fastapi import APIRouter, status

from app.keys.deps import EditorKey
from app.kit.deps import SessionDep
from app.kit.pagination import Page, PageParamsDep, make_page
from app.newsletters import service
from app.newsletters.deps import NewsletterDep
from app.newsletters.schemas import NewsletterCreate, NewsletterRead, NewsletterUpdate

__all__ = ["NewsletterDep", "router"]

router = APIRouter(prefix="/api/v1/newsletters", tags=["newsletters"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewsletterRead)
async def create_newsletter(
    body: NewsletterCreate, session: SessionDep, _: EditorKey
) -> NewsletterRead:
    newsletter = await service.create(session, body)
    return NewsletterRead.model_validate(newsletter)


@router.get("", response_model=Page[NewsletterRead])
async def list_newsletters(
    session: SessionDep, _: EditorKey, page: PageParamsDep
) -> Page[NewsletterRead]:
    rows = await service.list_page(session, after_id=page.after_id, limit=page.limit)
    return make_page(
        [NewsletterRead.model_validate(r) for r in rows], [r.id for r in rows], page.limit
    )


@router.get("/{slug}", response_model=NewsletterRead)
async def get_newsletter(_: EditorKey, newsletter: NewsletterDep) -> NewsletterRead:
    return NewsletterRead.model_validate(newsletter)


@router.patch("/{slug}", response_model=NewsletterRead)
async def update_newsletter(
    body: NewsletterUpdate, session: SessionDep, _: EditorKey, newsletter: NewsletterDep
) -> NewsletterRead:
    newsletter = await service.update(session, newsletter, body)
    return NewsletterRead.model_validate(newsletter)
