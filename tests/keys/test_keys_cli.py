"""`broadsheet keys list` and `keys revoke` on the real test database, as subprocesses."""

from __future__ import annotations

import asyncio
import os
import sys

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.keys.service import create_key
from app.kit.db import unit_of_work
from app.models import ApiKey, Role
from tests.conftest import ROOT, SECRET


async def keys_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "keys",
        *args,
        cwd=ROOT,
        env={
            **os.environ,
            "BROADSHEET_DATABASE_URL": database_url,
            "BROADSHEET_SECRET_KEY": SECRET,
            "COLUMNS": "160",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def _make(sessionmaker: async_sessionmaker[AsyncSession], name: str, role: Role) -> str:
    async with unit_of_work(sessionmaker) as session:
        _, key = await create_key(session, name=name, role=role)
    return key


async def test_keys_list_shows_every_key_but_never_the_key_itself(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    cms = await _make(sessionmaker, "cms", Role.editor)
    ops = await _make(sessionmaker, "ops laptop", Role.admin)
    code, out, err = await keys_cli(database_url, "list")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header == ["id", "name", "role", "prefix", "created", "last", "used", "revoked"]
    cms_line = next(line for line in out.splitlines() if " cms " in f" {line} ")
    assert "editor" in cms_line
    assert cms[:10] in cms_line
    assert "UTC" in cms_line  # created
    assert cms_line.rstrip().endswith("-")  # never revoked
    assert "ops laptop" in out
    assert ops[:10] in out
    assert cms not in out
    assert ops not in out


async def test_keys_revoke_by_id_or_prefix_refuses_the_key_at_once(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    client: AsyncClient,
) -> None:
    first = await _make(sessionmaker, "first", Role.admin)
    second = await _make(sessionmaker, "second", Role.admin)
    ids = {
        row.name: row.id
        for row in (await session.execute(select(ApiKey))).scalars()
        if row.name in ("first", "second")
    }
    assert (
        await client.get("/api/v1/keys", headers={"Authorization": f"Bearer {first}"})
    ).status_code == 200

    code, out, err = await keys_cli(database_url, "revoke", str(ids["first"]))
    assert code == 0, err
    assert f"revoked key {ids['first']} (first, {first[:10]}...)" in out
    code, out, err = await keys_cli(database_url, "revoke", second[:10])
    assert code == 0, err
    assert f"revoked key {ids['second']} (second" in out

    for key in (first, second):
        refused = await client.get("/api/v1/keys", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401
    code, out, _ = await keys_cli(database_url, "list")
    revoked_lines = [line for line in out.splitlines() if "first" in line or "second" in line]
    assert len(revoked_lines) == 2
    assert all(line.rstrip().endswith("UTC") for line in revoked_lines)

    again, out, _ = await keys_cli(database_url, "revoke", str(ids["first"]))
    assert again == 0
    assert "was already revoked" in out


async def test_keys_revoke_of_an_unknown_or_ambiguous_key_changes_nothing(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    await _make(sessionmaker, "one", Role.editor)
    await _make(sessionmaker, "two", Role.editor)
    code, _, err = await keys_cli(database_url, "revoke", "987654")
    assert code == 1
    assert "no key with id 987654" in err
    code, _, err = await keys_cli(database_url, "revoke", "bs_!nope")
    assert code == 1
    assert "no key whose prefix starts with bs_!nope" in err
    code, _, err = await keys_cli(database_url, "revoke", "bs_")  # every key starts so
    assert code == 2
    assert "at least 4 characters" in err
    session.add_all(
        ApiKey(name=f"twin {n}", role="editor", key_hash=f"{n:064x}", prefix=f"bs_Twin00{n}")
        for n in (1, 2)
    )
    await session.commit()
    code, _, err = await keys_cli(database_url, "revoke", "bs_Twin")
    assert code == 2
    assert "bs_Twin is the start of several keys" in err
    rows = (await session.execute(select(ApiKey))).scalars().all()
    assert all(row.revoked_at is None for row in rows)
