from __future__ import annotations

from httpx import AsyncClient

from tests.pages.conftest import BROWSER_ACCEPT
from tests.pages.site import Site


async def test_home_page_says_what_this_is_and_links_each_newsletter_and_the_api_docs(
    client: AsyncClient, site: Site
) -> None:
    response = await client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="en">' in page
    assert "<title>Broadsheet</title>" in page
    assert "newsletter service" in page
    for slug, name in (("weekly", "The Weekly"), ("field-notes", "Field Notes")):
        assert f">{name}</h2>" in page
        assert f'href="/newsletters/{slug}/subscribe"' in page
        assert f'href="/newsletters/{slug}/archive"' in page
    assert "Short dispatches from the workshop." in page
    assert 'href="/docs"' in page
    assert page.index("The Weekly") < page.index("Field Notes")  # in the order made


async def test_home_page_without_newsletters_says_there_are_none_yet(client: AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "No newsletters yet." in response.text
    assert 'href="/docs"' in response.text


async def test_home_page_links_the_dashboard(client: AsyncClient) -> None:
    assert 'href="/admin"' in (await client.get("/")).text
