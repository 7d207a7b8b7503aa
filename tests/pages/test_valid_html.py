"""The Nu HTML checker finds no error on any public page."""

from __future__ import annotations

import re

from httpx import AsyncClient

from tests.pages.conftest import BROWSER_ACCEPT
from tests.pages.site import Site
from tests.validators import require_vnu, vnu_check

BROWSER = {"Accept": BROWSER_ACCEPT}


async def test_dates_on_the_archive_and_issue_page_are_machine_readable_to_the_second(
    client: AsyncClient, site: Site
) -> None:
    for path in (site.archive_path, site.issue_path):
        page = (await client.get(path)).text
        assert re.findall(r'<time datetime="([^"]+)">', page) == ["2026-11-30T09:15:42Z"], path


async def test_every_public_page_is_valid_html(client: AsyncClient, site: Site) -> None:
    require_vnu()
    documents: dict[str, str] = {}
    paths = {
        "home": "/",
        "docs": "/docs",
        "archive": site.archive_path,
        "issue": site.issue_path,
        "subscribe form": site.subscribe_path,
        "confirm": site.confirm_path,
        "unsubscribe": site.unsubscribe_path,
        "error page": "/newsletters/weekly/issues/404",
        "bad link": "/confirm/not-a-token",
    }
    for name, path in paths.items():
        response = await client.get(path, headers=BROWSER)
        assert response.status_code < 500, name
        documents[name] = response.text
    for name, form in (
        ("subscribed", {"email": "new.reader@example.com"}),
        ("subscribe errors", {"email": "not an address", "name": "x" * 300}),
    ):
        response = await client.post(site.subscribe_path, data=form, headers=BROWSER)
        documents[name] = response.text
    response = await client.post(site.unsubscribe_path, headers=BROWSER)
    assert response.status_code == 200
    documents["unsubscribed"] = response.text
    messages = vnu_check(documents)
    assert messages == [], "\n".join(str(message) for message in messages)
