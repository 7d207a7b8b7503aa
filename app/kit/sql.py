"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def insert_ignore(
    session: AsyncSession,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    conflict: list[str],
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING; the number of rows inserted."""
    stmt: Any
    if dialect_name(session) == "postgresql":
        stmt = (
            postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=conflict)
        )
    else:
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=conflict)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
