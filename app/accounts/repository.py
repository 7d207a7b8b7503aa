"""Queries on users, sessions and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.sql import rowcount
from app.models import AuditEvent, Role, User, UserSession


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    found: User | None = await session.scalar(
        select(User).where(func.lower(User.email) == email.lower())
    )
    return found


async def list_users(session: AsyncSession) -> Sequence[User]:
    return (await session.scalars(select(User).order_by(User.email))).all()


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def count_active_admins(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.admin.value, User.disabled_at.is_(None))
        )
        or 0
    )


async def session_with_user(
    session: AsyncSession, token_hash: str
) -> tuple[UserSession, User] | None:
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == token_hash, UserSession.revoked_at.is_(None))
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def touch_session(session: AsyncSession, session_id: int, now: datetime) -> None:
    await session.execute(
        update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now)
    )


async def revoke_session(session: AsyncSession, session_id: int, now: datetime) -> bool:
    result = await session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return rowcount(result) > 0


async def revoke_sessions_of(session: AsyncSession, user_id: int, now: datetime) -> int:
    result = await session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return rowcount(result)


async def audit_page(
    session: AsyncSession, *, limit: int, before_id: int | None
) -> Sequence[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return (await session.scalars(query)).all()
