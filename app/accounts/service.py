"""Users, sessions, password resets and the audit log: the rules, in one place.

A session cookie holds 32 random bytes; the database keeps only their SHA-256, so a
copy of the database opens no browser session. A session ends when it is revoked
(logout, password change, user disabled) or after `SESSION_IDLE_HOURS` without a request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts.passwords import hash_password, verify_password
from app.kit.addresses import AddressError, normalise_email
from app.kit.clock import utcnow
from app.kit.errors import Conflict, Invalid, NotFound
from app.kit.tokens import Signer, TokenError
from app.models import AuditEvent, Role, User, UserSession

# A session's last_seen_at is written at most this often, not on every request.
_TOUCH_EVERY = timedelta(minutes=1)
RESET_PURPOSE = "password-reset"
RESET_MAX_AGE = 3600


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person behind a dashboard request."""

    user_id: int
    email: str
    role: Role
    session_id: int
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def actor(self) -> str:
        return f"user {self.email}"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def checked_email(value: str) -> str:
    try:
        return normalise_email(value)
    except AddressError as exc:
        raise Invalid("email", str(exc)) from None


def _hashed(password: str) -> str:
    """The argon2 hash of an acceptable password; `Invalid` naming what is wrong otherwise."""
    try:
        return hash_password(password)
    except ValueError as exc:
        raise Invalid("password", str(exc)) from None


async def create_user(session: AsyncSession, *, email: str, role: Role, password: str) -> User:
    email = checked_email(email)
    if await repository.user_by_email(session, email) is not None:
        raise Conflict(f"a user {email} exists already")
    user = User(email=email, role=role.value, password_hash=_hashed(password))
    session.add(user)
    await session.flush()
    return user


async def get_user(session: AsyncSession, email: str) -> User:
    user = await repository.user_by_email(session, email.strip())
    if user is None:
        raise NotFound(f"no user {email.strip()}")
    return user


async def get_user_by_id(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    return await repository.list_users(session)


async def count_users(session: AsyncSession) -> int:
    return await repository.count_users(session)


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    """A new password; every session of the user ends and every reset link is spent."""
    password_hash = _hashed(password)
    now = utcnow()
    user.password_hash = password_hash
    user.password_changed_at = now
    await repository.revoke_sessions_of(session, user.id, now)


async def set_disabled(session: AsyncSession, user: User, disabled: bool) -> None:
    now = utcnow()
    user.disabled_at = now if disabled else None
    if disabled:
        await repository.revoke_sessions_of(session, user.id, now)


async def set_role(session: AsyncSession, user: User, role: Role) -> None:
    user.role = role.value


async def find_user(session: AsyncSession, email: str) -> User | None:
    return await repository.user_by_email(session, email.strip())


async def _guard_last_admin(session: AsyncSession, user: User, what: str) -> None:
    """An installation keeps at least one active admin, or nobody could manage users."""
    if user.role == Role.admin.value and user.disabled_at is None:
        if await repository.count_active_admins(session) <= 1:
            raise Conflict(f"{user.email} is the last active admin and cannot be {what}")


async def change_role(session: AsyncSession, user: User, role: Role, *, by: Viewer) -> bool:
    """A role change asked for in the dashboard; False when nothing changed.

    Nobody demotes themselves (they would lock themselves out of this very screen), and
    the last active admin stays one.
    """
    if user.role == role.value:
        return False
    if role is not Role.admin:
        if user.id == by.user_id:
            raise Conflict("you cannot take the admin role from yourself")
        await _guard_last_admin(session, user, "made an editor")
    await set_role(session, user, role)
    return True


async def change_disabled(session: AsyncSession, user: User, disabled: bool, *, by: Viewer) -> bool:
    """Disable or enable from the dashboard, with the same guards; False when unchanged."""
    if (user.disabled_at is not None) == disabled:
        return False
    if disabled:
        if user.id == by.user_id:
            raise Conflict("you cannot disable yourself")
        await _guard_last_admin(session, user, "disabled")
    await set_disabled(session, user, disabled)
    return True


async def check_login(session: AsyncSession, email: str, password: str) -> User | None:
    """The user these credentials belong to, or None (same work and answer either way)."""
    user = await repository.user_by_email(session, email.strip())
    ok = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not ok or user.disabled_at is not None:
        return None
    return user


async def start_session(session: AsyncSession, user: User, *, ip: str, user_agent: str) -> str:
    """A new session for `user`; the cookie's token (shown only here)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    user.last_login_at = now
    session.add(
        UserSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            ip=ip[:64],
            user_agent=user_agent[:300],
        )
    )
    await session.flush()
    return token


async def resolve_session(session: AsyncSession, token: str, *, idle: timedelta) -> Viewer | None:
    """The viewer behind a session cookie, or None when it is unknown, ended or idle."""
    if not token or len(token) > 100:
        return None
    found = await repository.session_with_user(session, _token_hash(token))
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if user.disabled_at is not None or now - row.last_seen_at > idle:
        return None
    if now - row.last_seen_at > _TOUCH_EVERY:
        await repository.touch_session(session, row.id, now)
    return Viewer(user.id, user.email, Role(user.role), row.id, row.csrf_token)


async def end_session(session: AsyncSession, viewer: Viewer) -> None:
    await repository.revoke_session(session, viewer.session_id, utcnow())


def _password_mark(user: User) -> str:
    """A short fingerprint of the stored hash: argon2 salts anew on every change, so a
    link carrying the old mark is spent however soon the password changes."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def reset_token(signer: Signer, user: User) -> str:
    """A reset link's token: good for an hour, and only until the password changes."""
    return signer.sign_timed(RESET_PURPOSE, user.id, _password_mark(user))


async def user_for_reset(session: AsyncSession, signer: Signer, token: str) -> User | None:
    """The user a reset link is for, or None when it is forged, expired or spent."""
    try:
        parts = signer.unsign_timed(RESET_PURPOSE, token, RESET_MAX_AGE)
    except TokenError:
        return None
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    user = await session.get(User, int(parts[0]))
    if user is None or user.disabled_at is not None:
        return None
    if not hmac.compare_digest(_password_mark(user), parts[1]):
        return None  # spent: the password changed since the link was made
    return user


async def audit(
    session: AsyncSession, actor: str, action: str, subject: str = "", detail: str = ""
) -> None:
    """Write down who did what, in the transaction that does it."""
    session.add(
        AuditEvent(
            at=utcnow(),
            actor=_one_line(actor)[:400],
            action=action[:40],
            subject=_one_line(subject)[:400],
            detail=_one_line(detail)[:1000],
        )
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def audit_page(
    session: AsyncSession, *, limit: int = 50, before_id: int | None = None
) -> Sequence[AuditEvent]:
    return await repository.audit_page(session, limit=limit, before_id=before_id)
