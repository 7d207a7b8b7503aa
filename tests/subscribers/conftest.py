from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.main import create_app
from app.models import Newsletter
from tests.conftest import make_settings
from tests.factories import create_gazette
from tests.smtp import MailSink

ClientFactory = Callable[..., AbstractAsyncContextManager[AsyncClient]]


@pytest.fixture
async def newsletter(session: AsyncSession) -> Newsletter:
    return await create_gazette(session)


@pytest.fixture
def client_with(
    database_url: str, smtp_server: tuple[MailSink, int], engine: AsyncEngine
) -> ClientFactory:
    """A client for an app built with other settings (`client_with(subscribe_rate_limit=..)`)."""

    @asynccontextmanager
    async def factory(peer: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[AsyncClient]:
        settings = make_settings(database_url, smtp_server[1], **overrides)
        app = create_app(settings, engine=engine)
        transport = ASGITransport(app=app, client=(peer, 50000))
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client

    return factory
