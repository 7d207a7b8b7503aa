"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def dialect_insert(session: AsyncSession, target: Any) -> Any:
    """The dialect's INSERT for `target` (a table or a mapped class), which has ON CONFLICT.

    Executed with a list of parameter sets it is one compiled statement sent as multi-row
    batches ("insertmanyvalues"), and its RETURNING rows are exactly the rows inserted.
    """
    if dialect_name(session) == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


async def insert_ignore(
    session: AsyncSession,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    conflict: list[str],
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING; the number of rows inserted."""
    stmt = (
        dialect_insert(session, table)
        .values(values)
        .on_conflict_do_nothing(index_elements=conflict)
    )
    return rowcount(await session.execute(stmt))


async def insert_ignore_returning(
    session: AsyncSession, entity: type[T], values: dict[str, Any], conflict: list[str]
) -> T | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the new row as an ORM object, or None.

    One round trip for the common case of a row that is new; the caller reads the
    existing row only when there was one.
    """
    stmt = (
        dialect_insert(session, entity)
        .values(values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(entity)
    )
    row: T | None = (await session.scalars(stmt)).one_or_none()
    return row


def rowcount(result: Any) -> int:
    """Rows an UPDATE, DELETE or INSERT touched (0 when the driver cannot tell)."""
    return int(getattr(result, "rowcount", 0) or 0)
