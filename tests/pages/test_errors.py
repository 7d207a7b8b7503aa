"""Browsers get error pages; API clients keep `{"detail": ...}`."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from tests.pages.conftest import BROWSER_ACCEPT
from tests.pages.site import Site

BROWSER = {"Accept": BROWSER_ACCEPT}


def assert_error_page(response: Response, status: int, heading: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!doctype html>")
    assert '<html lang="en">' in page
    title = re.search(r"<title>(.+?)</title>", page)
    assert title is not None
    assert heading in title.group(1)
    assert f"<h1>{heading}</h1>" in page
    assert 'href="/"' in page  # a way home


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/newsletters/nope/archive", "no newsletter with the slug &#39;nope&#39;"),
        ("/newsletters/weekly/issues/99", "no sent issue number 99 in &#39;weekly&#39;"),
        ("/newsletters/nope/feed.xml", "no newsletter with the slug &#39;nope&#39;"),
        ("/no/such/page", None),
        ("/static/missing.css", None),
    ],
)
async def test_a_browser_gets_an_html_404_page_for_what_does_not_exist(
    client: AsyncClient, site: Site, path: str, detail: str | None
) -> None:
    response = await client.get(path, headers=BROWSER)
    assert_error_page(response, 404, "Page not found")
    if detail:
        assert detail in response.text
    assert "Not Found" not in response.text  # Starlette's phrase is not repeated


async def test_a_malformed_issue_number_is_a_page_for_a_browser_and_json_for_a_client(
    client: AsyncClient, site: Site
) -> None:
    response = await client.get("/newsletters/weekly/issues/abc", headers=BROWSER)
    assert_error_page(response, 422, "This address is not valid")
    response = await client.get("/newsletters/weekly/issues/abc")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "number"]


async def test_a_wrong_method_on_a_page_is_a_405_page_for_a_browser(client: AsyncClient) -> None:
    response = await client.delete("/newsletters/weekly/archive", headers=BROWSER)
    assert_error_page(response, 405, "This page cannot do that")
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Accept": "application/json"}, {"Accept": "*/*"}],
    ids=["no accept", "json", "anything"],
)
async def test_clients_that_do_not_ask_for_html_keep_json_errors(
    client: AsyncClient, site: Site, headers: dict[str, str]
) -> None:
    for path, status in (
        ("/newsletters/nope/archive", 404),
        ("/newsletters/weekly/issues/99", 404),
        ("/no/such/page", 404),
    ):
        response = await client.get(path, headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["detail"], str)
    response = await client.delete("/newsletters/weekly/archive", headers=headers)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}


async def test_the_api_answers_json_even_to_a_browser(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    response = await client.get("/api/v1/newsletters/nope", headers=BROWSER)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or invalid API key"}
    response = await client.get("/api/v1/newsletters/nope", headers={**BROWSER, **editor_headers})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    response = await client.get("/api/v1/no-such-endpoint", headers=BROWSER)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_a_bug_shows_a_browser_an_error_page_and_other_clients_plain_text(
    app: FastAPI,
) -> None:
    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/broken", headers=BROWSER)
        assert_error_page(response, 500, "Something went wrong")
        assert "a bug" not in response.text
        assert "script-src 'self'" in response.headers["content-security-policy"]
        response = await client.get("/broken")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
