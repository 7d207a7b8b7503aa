from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Role
from tests.admin.support import Editor, log_in, make_user


async def _client(app: FastAPI) -> AsyncClient:
    transport = ASGITransport(app=app, client=("127.0.0.1", 50001))
    return AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def editor(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Editor]:
    """A logged-in editor."""
    await make_user(sessionmaker, "editor@example.com", Role.editor)
    async with await _client(app) as client:
        yield await log_in(client, "editor@example.com")


@pytest.fixture
async def admin(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Editor]:
    """A logged-in admin."""
    await make_user(sessionmaker, "admin@example.com", Role.admin)
    async with await _client(app) as client:
        yield await log_in(client, "admin@example.com")
