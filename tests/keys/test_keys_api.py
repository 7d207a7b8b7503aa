from __future__ import annotations

import hashlib

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey


async def test_admin_creates_a_key_that_is_shown_once_and_stored_hashed(
    client: AsyncClient, admin_headers: dict[str, str], session: AsyncSession
) -> None:
    response = await client.post(
        "/api/v1/keys", json={"name": "cms", "role": "editor"}, headers=admin_headers
    )
    assert response.status_code == 201
    body = response.json()
    key = body["key"]
    assert key.startswith("bs_")
    assert len(key) >= 43 + 3
    assert body["prefix"] == key[:10]
    row = (await session.execute(select(ApiKey).where(ApiKey.id == body["id"]))).scalar_one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    listed = (await client.get("/api/v1/keys", headers=admin_headers)).json()
    assert all("key" not in item for item in listed["items"])
    assert {item["name"] for item in listed["items"]} >= {"cms"}


async def test_new_key_works_and_revoked_key_is_refused(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = (
        await client.post(
            "/api/v1/keys", json={"name": "ops", "role": "admin"}, headers=admin_headers
        )
    ).json()
    new = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/api/v1/keys", headers=new)).status_code == 200
    revoked = await client.delete(f"/api/v1/keys/{created['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/keys", headers=new)).status_code == 401


async def test_requests_without_a_valid_key_get_401(client: AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await client.get("/api/v1/keys", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]


async def test_editor_may_not_manage_keys(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    response = await client.get("/api/v1/keys", headers=editor_headers)
    assert response.status_code == 403
    response = await client.post("/api/v1/keys", json={"name": "x"}, headers=editor_headers)
    assert response.status_code == 403


async def test_bootstrap_admin_key_from_settings(
    client: AsyncClient, app: object, database_url: str, smtp_server: object
) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    settings = make_settings(database_url, 2525, admin_api_key="bootstrap-key-0123456789abc")
    from httpx import ASGITransport

    other = create_app(settings)
    async with AsyncClient(transport=ASGITransport(app=other), base_url="http://t") as c:
        ok = await c.get(
            "/api/v1/keys", headers={"Authorization": "Bearer bootstrap-key-0123456789abc"}
        )
        assert ok.status_code == 200
    await other.state.engine.dispose()


async def test_key_name_with_a_line_break_is_refused(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/api/v1/keys", json={"name": "a\nb"}, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
