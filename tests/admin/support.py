"""Dashboard test helpers: users, logged-in clients, and the checks every page gets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.kit.db import unit_of_work
from app.models import Role

PASSWORD = "correct horse battery"
ORIGIN = "http://testserver"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Editor:
    """A logged-in dashboard client and the CSRF token of its session."""

    client: AsyncClient
    email: str
    csrf: str

    def form(self, **fields: str) -> dict[str, str]:
        """Form fields with the session's CSRF token."""
        return {"csrf_token": self.csrf, **fields}

    async def post(self, path: str, **fields: str) -> Response:
        return await self.client.post(path, data=self.form(**fields), headers={"Origin": ORIGIN})


async def make_user(
    sessionmaker: async_sessionmaker[AsyncSession],
    email: str,
    role: Role = Role.editor,
    password: str = PASSWORD,
) -> None:
    async with unit_of_work(sessionmaker) as session:
        await accounts.create_user(session, email=email, role=role, password=password)


async def log_in(client: AsyncClient, email: str, password: str = PASSWORD) -> Editor:
    response = await client.post(
        "/admin/login",
        data={"email": email, "password": password, "next": "/admin"},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 303, response.text
    home = await client.get("/admin")
    assert home.status_code == 200, home.text
    found = _CSRF.search(home.text)
    assert found is not None
    return Editor(client, email, found.group(1))
