"""Logging in and out, sessions, CSRF and roles (SPEC section 11)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.main import create_app
from app.models import Role, UserSession
from tests.admin.support import ORIGIN, PASSWORD, Editor, make_user
from tests.conftest import make_settings
from tests.smtp import MailSink


async def test_an_unauthenticated_page_redirects_to_login_with_next(client: AsyncClient) -> None:
    response = await client.get("/admin/newsletters/weekly/issues?x=1")
    assert response.status_code == 303
    assert (
        response.headers["location"] == "/admin/login?next=/admin/newsletters/weekly/issues%3Fx%3D1"
    )


@pytest.mark.parametrize(
    "next_value", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_next_never_leaves_the_site(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], next_value: str
) -> None:
    await make_user(sessionmaker, "e@example.com")
    page = await client.get("/admin/login", params={"next": next_value})
    assert 'name="next" value="/admin"' in page.text
    response = await client.post(
        "/admin/login",
        data={"email": "e@example.com", "password": PASSWORD, "next": next_value},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"


async def test_login_sets_a_guarded_cookie_and_leads_to_next(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(sessionmaker, "e@example.com")
    response = await client.post(
        "/admin/login",
        data={"email": "E@Example.com ", "password": PASSWORD, "next": "/admin/keys"},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/keys"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/" in cookie
    assert "secure" not in cookie  # BASE_URL is http in the tests


async def test_a_wrong_password_is_refused_with_the_form_again(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_user(sessionmaker, "e@example.com")
    response = await client.post(
        "/admin/login",
        data={"email": "e@example.com", "password": "wrong password!"},
        headers={"Origin": ORIGIN, "Accept": "text/html"},
    )
    assert response.status_code == 400
    assert "do not match" in response.text
    assert "set-cookie" not in response.headers
    assert (await client.get("/admin")).status_code == 303


async def test_failed_logins_are_rate_limited(
    database_url: str,
    smtp_server: tuple[MailSink, int],
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Counted per hour here: a per-minute window could roll over between the attempts of
    # a slow run and start counting again.
    settings = make_settings(database_url, smtp_server[1], login_rate_limit="10/hour")
    transport = ASGITransport(app=create_app(settings, engine=engine), client=("127.0.0.1", 2))
    await make_user(sessionmaker, "e@example.com")
    statuses = []
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(12):
            response = await client.post(
                "/admin/login",
                data={"email": "e@example.com", "password": "not the password"},
                headers={"Origin": ORIGIN},
            )
            statuses.append(response.status_code)
    assert statuses[:10] == [400] * 10
    assert statuses[10:] == [429, 429]
    assert int(response.headers["retry-after"]) > 0


async def test_logout_ends_the_session_on_the_server(editor: Editor) -> None:
    cookie = editor.client.cookies.get("bs_session")
    response = await editor.post("/admin/logout")
    assert response.status_code == 303
    # The old cookie, presented again, no longer opens anything.
    editor.client.cookies.set("bs_session", cookie or "")
    assert (await editor.client.get("/admin")).status_code == 303


async def test_an_idle_session_expires(
    editor: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await editor.client.get("/admin")).status_code == 200
    async with sessionmaker() as session:
        await session.execute(
            update(UserSession).values(last_seen_at=utcnow() - timedelta(hours=13))
        )
        await session.commit()
    assert (await editor.client.get("/admin")).status_code == 303


async def test_a_form_from_another_origin_or_without_the_token_is_refused(
    editor: Editor,
) -> None:
    foreign = await editor.client.post(
        "/admin/logout",
        data=editor.form(),
        headers={"Origin": "https://evil.example", "Accept": "text/html"},
    )
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    missing = await editor.client.post(
        "/admin/logout", data={}, headers={"Origin": ORIGIN, "Accept": "text/html"}
    )
    assert missing.status_code == 403
    assert "security token" in missing.text
    # Neither logged the editor out.
    assert (await editor.client.get("/admin")).status_code == 200


async def test_a_disabled_user_cannot_log_in(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from app.accounts import service

    await make_user(sessionmaker, "gone@example.com", Role.admin)
    async with sessionmaker() as session:
        user = await service.get_user(session, "gone@example.com")
        await service.set_disabled(session, user, True)
        await session.commit()
    response = await client.post(
        "/admin/login",
        data={"email": "gone@example.com", "password": PASSWORD},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 400
