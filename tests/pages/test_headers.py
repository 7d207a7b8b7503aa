"""Every public page: a strict Content-Security-Policy, nosniff, a Referrer-Policy; HEAD."""

from __future__ import annotations

from httpx import AsyncClient, Response

from app.kit.web import parse_csp
from tests.pages.conftest import BROWSER_ACCEPT
from tests.pages.site import Site

BROWSER = {"Accept": BROWSER_ACCEPT}


def page_paths(site: Site) -> dict[str, str]:
    return {
        "home": "/",
        "docs": "/docs",
        "archive": site.archive_path,
        "issue": site.issue_path,
        "subscribe": site.subscribe_path,
        "confirm": site.confirm_path,
        "unsubscribe": site.unsubscribe_path,
        "not found": "/newsletters/nope/archive",
        "unknown path": "/nothing-here",
    }


def assert_strict_policy(response: Response, name: str) -> dict[str, str]:
    assert response.headers["content-type"].startswith("text/html"), name
    policy = parse_csp(response.headers["content-security-policy"])
    assert policy["script-src"] == "'self'", name
    assert policy["style-src"] == "'self'", name
    assert policy["font-src"] == "'self'", name
    assert policy["default-src"] == "'self'", name
    assert policy["object-src"] == "'none'", name
    assert policy["frame-ancestors"] == "'none'", name
    assert "unsafe-inline" not in response.headers["content-security-policy"], name
    assert response.headers["x-content-type-options"] == "nosniff", name
    assert response.headers["referrer-policy"], name
    return policy


async def test_every_public_page_sends_a_strict_content_security_policy(
    client: AsyncClient, site: Site
) -> None:
    for name, path in page_paths(site).items():
        response = await client.get(path, headers=BROWSER)
        assert response.status_code < 500, name
        policy = assert_strict_policy(response, name)
        if name != "issue":
            assert policy["img-src"] == "'self' data:", name
    posted = await client.post(
        site.subscribe_path, data={"email": "new@example.com"}, headers=BROWSER
    )
    assert posted.status_code == 202
    assert_strict_policy(posted, "subscribed")
    invalid = await client.post(site.subscribe_path, data={"email": "nope"}, headers=BROWSER)
    assert invalid.status_code == 400
    assert_strict_policy(invalid, "subscribe error")


async def test_an_issue_page_may_show_the_editors_images_from_any_https_host(
    client: AsyncClient, site: Site
) -> None:
    response = await client.get(site.issue_path)
    policy = parse_csp(response.headers["content-security-policy"])
    assert policy["img-src"] == "'self' data: https:"
    assert policy["script-src"] == "'self'"
    assert 'src="https://img.example.org/1.jpg"' in response.text


async def test_token_pages_keep_sending_no_referrer_and_other_pages_send_the_origin_only(
    client: AsyncClient, site: Site
) -> None:
    for path in (site.confirm_path, site.unsubscribe_path):
        assert (await client.get(path)).headers["referrer-policy"] == "no-referrer"
    for path in ("/", site.archive_path, site.issue_path):
        response = await client.get(path)
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


async def test_json_and_feeds_get_nosniff_but_no_page_policy(
    client: AsyncClient, site: Site
) -> None:
    for path in ("/healthz", f"/newsletters/{site.slug}/feed.xml", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in response.headers


async def test_head_on_every_public_page_answers_like_get_without_a_body(
    client: AsyncClient, site: Site
) -> None:
    paths = {
        **page_paths(site),
        "feed": f"/newsletters/{site.slug}/feed.xml",
        "stylesheet": "/static/broadsheet.css",
        "docs script": "/docs/assets/swagger-ui-bundle.js",
    }
    for name, path in paths.items():
        got = await client.get(path, headers=BROWSER)
        head = await client.head(path, headers=BROWSER)
        assert head.status_code == got.status_code, name
        assert head.content == b"", name
        for header in ("content-type", "content-length", "content-security-policy"):
            assert head.headers.get(header) == got.headers.get(header), (name, header)


async def test_head_on_a_tracking_link_is_not_taken_for_a_click(client: AsyncClient) -> None:
    response = await client.head("/t/c/anything")
    assert response.status_code == 405
