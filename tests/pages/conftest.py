from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.pages.site import Site, build_site

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
async def site(session: AsyncSession, app: FastAPI) -> Site:
    return await build_site(session, app.state.signer)
