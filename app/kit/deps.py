"""Request dependencies: settings, the request's session and transaction, the signer.

Authentication by API key is the keys feature's (`app.keys.deps`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.tokens import Signer
from app.settings import Settings


# The small dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hand-off per dependency per request.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, else rolled back.

    `scope="function"` on the alias below makes the commit happen before the response
    is sent, so a client never sees success for a change that was not stored.
    """
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_signer(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


SignerDep = Annotated[Signer, Depends(get_signer)]


def client_ip(request: Request, settings: Settings) -> str:
    """The client address; X-Forwarded-For is believed only from BROADSHEET_TRUSTED_PROXIES."""
    peer = request.client.host if request.client else "unknown"
    trusted = {p.strip() for p in settings.trusted_proxies.split(",") if p.strip()}
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted:
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer
