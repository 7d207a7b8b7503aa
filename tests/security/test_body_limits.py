"""Request bodies: oversized -> 413 before anything parses them; hostile JSON -> 4xx, never
a 5xx (SPEC sections 3 and 8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

LIMIT = 1_000_000  # BROADSHEET_MAX_BODY_BYTES default, used by the settings fixture


async def test_an_oversized_json_body_gets_413(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = b'{"slug": "x", "name": "' + b"a" * (LIMIT + 10) + b'"}'
    response = await client.post(
        "/api/v1/newsletters",
        content=body,
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]


async def test_an_oversized_body_without_content_length_gets_413(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"slug": "x", "name": "'
        for _ in range(20):
            yield b"a" * 100_000
        yield b'"}'

    response = await client.post(
        "/api/v1/newsletters",
        content=chunks(),
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_an_oversized_public_subscribe_body_gets_413(client: AsyncClient) -> None:
    response = await client.post(
        "/newsletters/any/subscribe",
        content=b"email=" + b"a" * (LIMIT + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


async def test_a_lying_content_length_gets_413(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/newsletters",
        content=b"{}",
        headers={**admin_headers, "content-type": "application/json", "content-length": "-1"},
    )
    assert response.status_code in (400, 413)


HOSTILE_JSON = {
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep in a field": b'{"slug": "x", "name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge number": b'{"slug": "x", "name": 1' + b"0" * 100_000 + b"}",
    "not utf-8": b'{"slug": "\xff\xfe", "name": "x"}',
    "lone surrogate": b'{"slug": "x", "name": "\\ud800"}',
    "NaN": b'{"slug": "x", "name": NaN}',
    "duplicate keys": b'{"slug": "a", "slug": "b"}',
    "truncated": b'{"slug": "x", "na',
    "empty": b"",
    "BOM": b'\xef\xbb\xbf{"slug": "x"}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
@pytest.mark.parametrize(
    "path", ["/api/v1/newsletters", "/api/v1/keys", "/newsletters/any/subscribe"]
)
async def test_hostile_json_gets_a_4xx_not_a_5xx(
    client: AsyncClient, admin_headers: dict[str, str], name: str, path: str
) -> None:
    response = await client.post(
        path,
        content=HOSTILE_JSON[name],
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
