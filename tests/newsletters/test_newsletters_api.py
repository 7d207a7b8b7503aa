from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import LINE_BREAKS, newsletter_body


async def test_editor_creates_reads_lists_and_updates_a_newsletter(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/newsletters",
        json=newsletter_body(schedule_cron="0 9 * * MON", timezone="Europe/Berlin"),
        headers=editor_headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["slug"] == "weekly"
    assert body["double_opt_in"] is True
    assert body["track_opens"] is False
    assert body["template"] == "default"
    assert body["timezone"] == "Europe/Berlin"

    read = await client.get("/api/v1/newsletters/weekly", headers=editor_headers)
    assert read.status_code == 200
    assert read.json()["name"] == "The Weekly"

    patched = await client.patch(
        "/api/v1/newsletters/weekly",
        json={"name": "The Weekly Digest", "reply_to": "editor@example.com", "track_opens": True},
        headers=editor_headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "The Weekly Digest"
    assert patched.json()["reply_to"] == "editor@example.com"
    assert patched.json()["track_opens"] is True
    assert patched.json()["schedule_cron"] == "0 9 * * MON"

    cleared = await client.patch(
        "/api/v1/newsletters/weekly", json={"schedule_cron": None}, headers=editor_headers
    )
    assert cleared.json()["schedule_cron"] is None

    listed = await client.get("/api/v1/newsletters", headers=editor_headers)
    assert [item["slug"] for item in listed.json()["items"]] == ["weekly"]


async def test_newsletter_list_is_cursor_paginated(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    for i in range(5):
        response = await client.post(
            "/api/v1/newsletters", json=newsletter_body(slug=f"n-{i}"), headers=editor_headers
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/api/v1/newsletters", params=params, headers=editor_headers)
        ).json()
        seen += [item["slug"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"n-{i}" for i in range(5)]


async def test_a_taken_slug_is_a_conflict(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    first = await client.post("/api/v1/newsletters", json=newsletter_body(), headers=editor_headers)
    assert first.status_code == 201
    second = await client.post(
        "/api/v1/newsletters", json=newsletter_body(), headers=editor_headers
    )
    assert second.status_code == 409
    assert "weekly" in second.json()["detail"]
    await client.post(
        "/api/v1/newsletters", json=newsletter_body(slug="other"), headers=editor_headers
    )
    renamed = await client.patch(
        "/api/v1/newsletters/other", json={"slug": "weekly"}, headers=editor_headers
    )
    assert renamed.status_code == 409


async def test_the_slug_new_is_reserved_for_the_dashboards_create_form(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/newsletters", json=newsletter_body(slug="new"), headers=editor_headers
    )
    assert response.status_code == 422
    assert "reserved" in response.text


async def test_unknown_newsletter_is_404(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/v1/newsletters/nope", headers=editor_headers)).status_code == 404
    response = await client.patch(
        "/api/v1/newsletters/nope", json={"name": "x"}, headers=editor_headers
    )
    assert response.status_code == 404


async def test_newsletter_endpoints_need_a_key(client: AsyncClient) -> None:
    assert (await client.get("/api/v1/newsletters")).status_code == 401
    assert (await client.post("/api/v1/newsletters", json=newsletter_body())).status_code == 401
    assert (await client.get("/api/v1/newsletters/weekly")).status_code == 401
    assert (await client.patch("/api/v1/newsletters/weekly", json={})).status_code == 401


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", "Not A Slug"),
        ("slug", "-lead"),
        ("slug", ""),
        ("from_email", "not-an-address"),
        ("from_email", "news@example.com\r\nBcc: victim@example.com"),
        ("reply_to", "nobody"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd"),
        ("schedule_cron", "every monday"),
        ("schedule_cron", "0 9 * * MON *"),
        ("schedule_cron", "61 9 * * *"),
        ("template", "../secret"),
        ("name", ""),
    ],
)
async def test_invalid_fields_are_refused_naming_the_field(
    client: AsyncClient, editor_headers: dict[str, str], field: str, value: str
) -> None:
    response = await client.post(
        "/api/v1/newsletters", json=newsletter_body(**{field: value}), headers=editor_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


@pytest.mark.parametrize("char", LINE_BREAKS)
@pytest.mark.parametrize("field", ["name", "from_name", "from_email", "reply_to"])
async def test_line_breaks_in_names_and_addresses_are_refused(
    client: AsyncClient, editor_headers: dict[str, str], field: str, char: str
) -> None:
    value = f"news{char}x@example.com" if "email" in field or field == "reply_to" else f"A{char}B"
    response = await client.post(
        "/api/v1/newsletters", json=newsletter_body(**{field: value}), headers=editor_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


@pytest.mark.parametrize("char", ["\r", "\n", "\u2028", "\x00"])
async def test_line_breaks_are_refused_on_update_too(
    client: AsyncClient, editor_headers: dict[str, str], char: str
) -> None:
    await client.post("/api/v1/newsletters", json=newsletter_body(), headers=editor_headers)
    response = await client.patch(
        "/api/v1/newsletters/weekly",
        json={"from_name": f"Evil{char}Bcc: x"},
        headers=editor_headers,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "from_name"]
    unchanged = await client.get("/api/v1/newsletters/weekly", headers=editor_headers)
    assert unchanged.json()["from_name"] == "The Weekly"


async def test_required_fields_cannot_be_nulled_and_unknown_fields_are_refused(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    await client.post("/api/v1/newsletters", json=newsletter_body(), headers=editor_headers)
    nulled = await client.patch(
        "/api/v1/newsletters/weekly", json={"name": None}, headers=editor_headers
    )
    assert nulled.status_code == 422
    assert nulled.json()["detail"][0]["loc"][:2] == ["body", "name"]
    unknown = await client.patch(
        "/api/v1/newsletters/weekly", json={"colour": "red"}, headers=editor_headers
    )
    assert unknown.status_code == 422


async def test_addresses_are_normalised(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/newsletters",
        json=newsletter_body(from_email="  News@Example.COM ", reply_to="ed@BÜCHER.example"),
        headers=editor_headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["from_email"] == "News@example.com"
    assert response.json()["reply_to"] == "ed@xn--bcher-kva.example"


async def test_oversized_body_is_413(client: AsyncClient, editor_headers: dict[str, str]) -> None:
    response = await client.post(
        "/api/v1/newsletters",
        json=newsletter_body(description="x" * 2_000_000),
        headers=editor_headers,
    )
    assert response.status_code == 413
