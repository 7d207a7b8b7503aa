"""Roles (SPEC section 3): every /api/v1 route wants a key; editors may not manage keys or
erase people. Routes are read from the application itself, so a new one is covered."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

ADMIN_ONLY = [
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/1"),
    ("DELETE", "/api/v1/subscribers/someone@example.com"),
]
PUBLIC_UNDER_API = {"/api/v1/webhooks/bounces"}  # authenticated by the webhook secret


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for template, operations in app.openapi()["paths"].items():
        if not template.startswith("/api/v1") or template in PUBLIC_UNDER_API:
            continue
        path = re.sub(r"\{[^}]*email[^}]*\}", "someone@example.com", template)
        path = re.sub(r"\{slug\}", "weekly", path)
        path = re.sub(r"\{[^}]+\}", "1", path)
        routes.extend((method.upper(), path) for method in sorted(operations))
    return routes


async def test_every_api_route_refuses_a_request_without_a_key(
    app: FastAPI, client: AsyncClient
) -> None:
    routes = api_routes(app)
    assert len(routes) > 20
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer bs_not-a-real-key"}):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, response.status_code)


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_an_editor_key_on_an_admin_route_gets_403(
    client: AsyncClient, editor_headers: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(
        method, path, headers=editor_headers, json={"name": "x", "role": "admin"}
    )
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


async def test_an_editor_cannot_mint_an_admin_key(
    client: AsyncClient, editor_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/keys", json={"name": "escalate", "role": "admin"}, headers=editor_headers
    )
    assert response.status_code == 403
    listed = (await client.get("/api/v1/keys", headers=admin_headers)).json()["items"]
    assert "escalate" not in {item["name"] for item in listed}


async def test_an_editor_may_use_the_editor_routes(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/newsletters",
        json={
            "slug": "weekly",
            "name": "Weekly",
            "from_name": "Ed",
            "from_email": "news@example.com",
        },
        headers=editor_headers,
    )
    assert created.status_code == 201, created.text
    assert (
        await client.get("/api/v1/newsletters/weekly", headers=editor_headers)
    ).status_code == 200


async def test_the_bounce_webhook_wants_the_webhook_secret_not_an_api_key(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"email": "someone@example.com", "kind": "hard"}
    for headers in ({}, admin_headers, {"Authorization": "Bearer wrong"}):
        response = await client.post("/api/v1/webhooks/bounces", json=body, headers=headers)
        assert response.status_code in (401, 403, 404, 405), response.status_code
