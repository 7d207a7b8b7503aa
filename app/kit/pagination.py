"""Cursor pagination: `?limit=&cursor=`, answered as `{"items": [...], "next_cursor": ...}`.

The cursor is the last id of the page, opaque to clients; pages are walked by id
(keyset), never by OFFSET, so they stay fast and stable while rows are added.
"""

from __future__ import annotations

import base64
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from app.kit.errors import Invalid

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int
    after_id: int


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id" or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("cursor", "invalid cursor", where="query") from exc


async def _page_params(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> PageParams:
    return PageParams(limit=limit, after_id=decode_cursor(cursor) if cursor else 0)


PageParamsDep = Annotated[PageParams, Depends(_page_params)]


def make_page(items: list[T], ids: list[int], limit: int) -> Page[T]:
    """`items` fetched with `limit + 1` rows: the extra row only says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items=items, next_cursor=encode_cursor(ids[limit - 1]) if more else None)
