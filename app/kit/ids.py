"""Ids: row ids in paths, and this installation's id (the Message-ID part, SPEC section 6)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import Path
from sqlalchemy import Engine, column, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.clock import utcnow
from app.kit.db import UTCDateTime

MAX_ID = 2**63 - 1

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]

# The `installation` table (app.models.Installation) as plain Core: kit stays below models.
_INSTALLATION = table(
    "installation", column("id"), column("value"), column("created_at", UTCDateTime())
)
_ONLY = 1  # the table holds one row, id 1 (a CHECK constraint says so)

# Message-ID tags already read, per engine (so per database and process).
_TAGS: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()


def new_installation_id() -> str:
    """128 random bits as 32 hex digits (the migration makes the same kind)."""
    return secrets.token_hex(16)


def message_id_tag(installation_id: str) -> str:
    """The part of every delivery's Message-ID that names this installation.

    Ten base32 characters (50 bits) of a hash of the installation id: two installations
    with the same BASE_URL share a tag about once in 10^15 pairs.
    """
    digest = hashlib.sha256(b"broadsheet message-id|" + installation_id.encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:10].lower()


async def installation_id(engine: AsyncEngine) -> str:
    """The installation id stored in the database, made there if the row is missing.

    The migration makes it; should the row be gone, the first process to look inserts
    one and every other one reads that same row (ON CONFLICT on the single fixed key).
    """
    read = select(_INSTALLATION.c.value).where(_INSTALLATION.c.id == _ONLY)
    async with engine.begin() as conn:
        value = (await conn.execute(read)).scalar_one_or_none()
        if value is None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(_INSTALLATION).values(
                id=_ONLY, value=new_installation_id(), created_at=utcnow()
            )
            await conn.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
            value = (await conn.execute(read)).scalar_one()
    return str(value)


async def installation_tag(engine: AsyncEngine) -> str:
    """`message_id_tag` of this database's installation id, read once per process."""
    tag = _TAGS.get(engine.sync_engine)
    if tag is None:
        tag = message_id_tag(await installation_id(engine))
        _TAGS[engine.sync_engine] = tag
    return tag
