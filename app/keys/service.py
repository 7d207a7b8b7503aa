"""API keys: 256-bit random, stored as SHA-256, looked up by hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.keys import repository
from app.kit.clock import utcnow
from app.kit.errors import Invalid, NotFound
from app.models import ApiKey, Role

KEY_PREFIX = "bs_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, name and role (`bootstrap` for ADMIN_API_KEY)."""

    key_id: int | None
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """Who did it, as the audit log names an API key."""
        return f"key {self.name}"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 32 bytes = 256 bits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:10]


async def create_key(session: AsyncSession, *, name: str, role: Role) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is never stored and shown only once."""
    key = generate_key()
    row = ApiKey(name=name, role=role.value, key_hash=hash_key(key), prefix=display_prefix(key))
    session.add(row)
    await session.flush()
    return row, key


async def authenticate(
    session: AsyncSession, presented: str, bootstrap_key: str | None
) -> Principal | None:
    if bootstrap_key and hmac.compare_digest(
        hash_key(presented).encode(), hash_key(bootstrap_key).encode()
    ):
        return Principal(key_id=None, name="bootstrap", role=Role.admin)
    digest = hash_key(presented)
    row = await repository.get_active_by_hash(session, digest)
    # The lookup is by an index on the hash; comparing the digests again in constant time
    # keeps the check independent of how the database compares strings.
    if row is None or not hmac.compare_digest(row.key_hash.encode(), digest.encode()):
        return None
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        await repository.touch(session, row.id, now)
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))


async def is_active(session: AsyncSession, key: str) -> bool:
    """True when `key` is a stored key that has not been revoked."""
    return await repository.get_active_by_hash(session, hash_key(key)) is not None


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key, oldest first (revoked ones too): an installation has a handful."""
    keys: list[ApiKey] = []
    after = 0
    while True:
        page = await repository.list_page(session, after_id=after, limit=500)
        keys.extend(page[:500])
        if len(page) <= 500:
            return keys
        after = page[499].id


async def find_key(session: AsyncSession, ref: str) -> ApiKey:
    """A key by its id or by the start of its shown prefix (`bs_AbC1234`).

    NotFound when nothing matches; Invalid when a prefix matches more than one key.
    """
    ref = ref.strip()
    if ref.isdigit():
        row = await repository.get(session, int(ref))
        if row is None:
            raise NotFound(f"no key with id {ref}")
        return row
    if len(ref) < 4:
        raise Invalid("key", "give the key's id or at least 4 characters of its prefix")
    matches = await repository.find_by_prefix(session, ref)
    if not matches:
        raise NotFound(f"no key whose prefix starts with {ref}")
    if len(matches) > 1:
        ids = ", ".join(str(row.id) for row in matches)
        raise Invalid("key", f"{ref} is the start of several keys ({ids}); give the id")
    return matches[0]


async def revoke_key(session: AsyncSession, key: ApiKey) -> bool:
    """Revoke a key at once (idempotent); True when this call revoked it."""
    if key.revoked_at is not None:
        return False
    await repository.revoke(session, key, utcnow())
    return True
