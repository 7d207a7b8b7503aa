"""Every public page in headless Chromium against a real `broadsheet serve`.

Requests to any host but the server's are blocked and recorded, as on a machine with no
internet: the pages must still work and must not even try to load a script, a style
sheet or a font from elsewhere (an editor's images in an issue are theirs to choose).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.tokens import Signer
from tests.browser.test_subscribe_flow import SHOTS, browser, server  # noqa: F401
from tests.conftest import SECRET
from tests.pages.site import Site, build_site
from tests.validators import axe_violations, require_axe

pytestmark = [pytest.mark.browser]

Action = Callable[[Any], Awaitable[None]]


@dataclass
class Visit:
    """What one page load asked for and what the browser refused."""

    origin: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)
    blocked: list[str] = field(default_factory=list)
    policy_violations: list[str] = field(default_factory=list)

    def foreign(self, *, except_images: bool) -> list[tuple[str, str]]:
        return [
            (kind, url)
            for kind, url in self.requests
            if not url.startswith((self.origin + "/", "data:", "blob:"))
            and not (except_images and kind == "image")
        ]


@pytest.fixture
async def site(session: AsyncSession) -> Site:
    return await build_site(session, Signer(SECRET.encode()))


async def _subscribe(page: Any) -> None:
    await page.get_by_label("Email address").fill("a.reader@example.com")
    await page.get_by_role("button", name="Subscribe").click()
    await page.wait_for_load_state()


async def _unsubscribe(page: Any) -> None:
    await page.get_by_role("button", name="Unsubscribe").click()
    await page.wait_for_load_state()


async def _docs_rendered(page: Any) -> None:
    # Swagger UI has drawn the operations from the schema.
    await page.get_by_text("/api/v1/newsletters/{slug}/subscribers", exact=True).first.wait_for()


async def _images_in_view(page: Any) -> None:
    # Story images load lazily: bring each into view, so that a slow machine cannot end
    # the visit before Chromium asked for them (the visit then waits for the network).
    for image in await page.locator("img.bs-story-image").all():
        await image.scroll_into_view_if_needed()


def public_pages(base_url: str, site: Site) -> dict[str, tuple[str, Action | None]]:
    pages: dict[str, tuple[str, Action | None]] = {
        "home": ("/", None),
        "docs": ("/docs", _docs_rendered),
        "subscribe": (site.subscribe_path, None),
        "subscribed": (site.subscribe_path, _subscribe),
        "confirm": (site.confirm_path, None),
        "unsubscribe": (site.unsubscribe_path, None),
        "unsubscribed": (site.unsubscribe_path, _unsubscribe),
        "archive": (site.archive_path, None),
        "issue": (site.issue_path, _images_in_view),
        "not-found": ("/newsletters/weekly/issues/99", None),
    }
    # The dashboard is checked too once it exists.
    if httpx.get(f"{base_url}/admin", follow_redirects=True).status_code == 200:
        pages["admin"] = ("/admin", None)
    return pages


async def visit(context: Any, base_url: str, path: str, action: Action | None) -> Visit:
    """Open a page in a context that blocks every other host; record what it asked for."""
    record = Visit(origin=base_url)

    async def only_this_server(route: Any) -> None:
        if route.request.url.startswith(base_url + "/"):
            await route.continue_()
        else:
            record.blocked.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_this_server)
    page = await context.new_page()
    page.on("request", lambda request: record.requests.append((request.resource_type, request.url)))
    page.on(
        "console",
        lambda message: (
            record.policy_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    response = await page.goto(base_url + path)
    assert response is not None
    await page.wait_for_load_state("networkidle")
    if action is not None:
        await action(page)
        await page.wait_for_load_state("networkidle")
    await page.close()
    await context.unroute("**/*")
    return record


async def test_the_api_docs_render_with_no_internet_under_a_strict_policy(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    blocked: list[str] = []
    violations: list[str] = []

    async def only_this_server(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_this_server)
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    response = await page.goto(f"{server}/docs")
    assert response is not None
    assert response.status == 200
    assert "script-src 'self';" in response.headers["content-security-policy"]
    operation = page.get_by_text("/api/v1/newsletters/{slug}/subscribers", exact=True).first
    await operation.wait_for()
    assert await operation.is_visible()
    assert await page.get_by_role("heading", name="Broadsheet API").first.is_visible()
    await page.wait_for_load_state("networkidle")
    assert blocked == []
    assert violations == []
    await context.close()


async def test_no_public_page_loads_anything_but_images_from_another_host(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    site: Site,
) -> None:
    context = await browser.new_context()
    for name, (path, action) in public_pages(server, site).items():
        record = await visit(context, server, path, action)
        assert record.requests, name
        # Only the issue page shows an editor's images; nothing else leaves the server.
        assert record.foreign(except_images=name == "issue") == [], name
        assert record.policy_violations == [], name
        if name == "issue":
            assert any(url.startswith("https://img.example.org/") for url in record.blocked)
    await context.close()


@pytest.mark.parametrize("width", [375, 1280])
async def test_every_public_page_passes_axe_and_fits_the_screen(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    site: Site,
    width: int,
) -> None:
    require_axe()
    SHOTS.mkdir(parents=True, exist_ok=True)
    # axe is injected as an inline script, which the pages' own policy refuses.
    context = await browser.new_context(
        viewport={"width": width, "height": 900 if width > 400 else 812}, bypass_csp=True
    )
    problems: dict[str, list[str]] = {}
    for name, (path, action) in public_pages(server, site).items():
        page = await context.new_page()
        await page.goto(server + path)
        if action is not None:
            await action(page)
        await page.wait_for_load_state("networkidle")
        found = await axe_violations(page)
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            found.append(f"{scroll_width} px wide at a {width} px viewport")
        if found:
            problems[name] = found
        await page.screenshot(path=str(SHOTS / f"public-{name}-{width}.png"), full_page=True)
        await page.close()
    await context.close()
    assert problems == {}
