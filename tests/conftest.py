"""Shared fixtures: a real database built by the real migrations, a real SMTP server.

The database is chosen by BROADSHEET_TEST_DB: `sqlite` (default, a fresh file per run)
or `postgresql` (a fresh database per run on BROADSHEET_TEST_PG_URL, by default the
local server at 127.0.0.1:5432). Every test starts from empty tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.keys.service import create_key
from app.kit.db import Base, create_engine, create_sessionmaker, unit_of_work
from app.main import create_app
from app.models import Role
from app.settings import Settings, load_settings
from tests.smtp import MailSink, start_smtp_server

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = os.environ.get("BROADSHEET_TEST_DB", "sqlite")
PG_URL = os.environ.get("BROADSHEET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "test-secret-key-0123456789abcdef"


def migrate(database_url: str) -> None:
    """Build the schema with the real command, as an operator would."""
    env = {**os.environ, "BROADSHEET_DATABASE_URL": database_url, "BROADSHEET_DEV": "1"}
    subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
    )


async def create_pg_database(name: str) -> str:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def db_kind() -> str:
    return TEST_DB


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if TEST_DB == "postgresql":
        name = f"broadsheet_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        url = await create_pg_database(name)
        migrate(url)
        yield url
        await drop_pg_database(name)
    else:
        path = tmp_path_factory.mktemp("db") / "broadsheet.db"
        url = f"sqlite+aiosqlite:///{path}"
        migrate(url)
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test that touches the database starts and ends with empty tables."""
    yield
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    # The installation row is made once by the migration, like alembic_version: kept.
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "installation"]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    controller = start_smtp_server(sink)
    yield sink, controller.port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[MailSink, int]) -> Iterator[MailSink]:
    sink, _ = smtp_server
    sink.clear()
    yield sink
    sink.clear()


def make_settings(database_url: str, smtp_port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
        "base_url": "http://testserver",
        "secret_key": SECRET,
        "retry_backoff_seconds": 0.2,
        "lease_seconds": 5,
        "subscribe_rate_limit": "1000/minute",
        "subscribe_address_limit": "1000/hour",
        "webhook_secret": "webhook-secret-0123456789",
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(database_url: str, smtp_server: tuple[MailSink, int]) -> Settings:
    return make_settings(database_url, smtp_server[1])


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> FastAPI:
    return create_app(settings, engine=engine)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _key_headers(
    sessionmaker: async_sessionmaker[AsyncSession], role: Role
) -> dict[str, str]:
    async with unit_of_work(sessionmaker) as session:
        _, key = await create_key(session, name=f"test {role.value}", role=role)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def admin_headers(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    return await _key_headers(sessionmaker, Role.admin)


@pytest.fixture
async def editor_headers(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    return await _key_headers(sessionmaker, Role.editor)


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for arranging and asserting; commit explicitly to make rows visible."""
    async with sessionmaker() as session:
        yield session
