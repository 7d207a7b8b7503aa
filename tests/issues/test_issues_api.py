from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Issue, Story
from tests.factories import create_newsletter

ISSUE = {
    "subject": "Issue of the week",
    "preheader": "Short and sweet",
    "intro": "Hello **readers**.",
    "stories": [
        {"title": "First", "body": "One", "url": "https://example.org/1"},
        {"title": "Second", "body": "Two", "source": "Wire", "image_url": "https://e.org/i.png"},
    ],
}


async def create(client: AsyncClient, headers: dict[str, str], **overrides: Any) -> Any:
    response = await client.post(
        "/api/v1/newsletters/weekly/issues", json={**ISSUE, **overrides}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_editor_creates_an_issue_with_stories_as_a_numbered_draft(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    body = await create(client, editor_headers)
    assert body["status"] == "draft"
    assert body["number"] == 1
    assert body["newsletter"] == "weekly"
    assert [s["title"] for s in body["stories"]] == ["First", "Second"]
    assert body["stories"][1]["source"] == "Wire"
    second = await create(client, editor_headers, subject="Next")
    assert second["number"] == 2
    fetched = await client.get(f"/api/v1/issues/{body['id']}", headers=editor_headers)
    assert fetched.status_code == 200
    assert fetched.json()["intro"] == "Hello **readers**."


async def test_numbers_stay_unique_under_concurrent_creates(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    results = await asyncio.gather(
        *(
            client.post(
                "/api/v1/newsletters/weekly/issues",
                json={"subject": f"S{i}"},
                headers=editor_headers,
            )
            for i in range(8)
        )
    )
    assert all(r.status_code == 201 for r in results), [r.text for r in results]
    assert sorted(r.json()["number"] for r in results) == list(range(1, 9))


async def test_numbering_is_per_newsletter(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    await create_newsletter(session, slug="daily", name="Daily")
    await create(client, editor_headers)
    response = await client.post(
        "/api/v1/newsletters/daily/issues", json={"subject": "x"}, headers=editor_headers
    )
    assert response.json()["number"] == 1


async def test_list_is_paginated_and_filtered_by_status(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    ids = [(await create(client, editor_headers, subject=f"S{i}"))["id"] for i in range(5)]
    await session.execute(update(Issue).where(Issue.id == ids[4]).values(status="sent"))
    await session.commit()
    first = (
        await client.get("/api/v1/newsletters/weekly/issues?limit=2", headers=editor_headers)
    ).json()
    assert [i["id"] for i in first["items"]] == ids[:2]
    cursor = first["next_cursor"]
    rest = (
        await client.get(
            f"/api/v1/newsletters/weekly/issues?limit=10&cursor={cursor}", headers=editor_headers
        )
    ).json()
    assert [i["id"] for i in rest["items"]] == ids[2:]
    assert rest["next_cursor"] is None
    sent = (
        await client.get("/api/v1/newsletters/weekly/issues?status=sent", headers=editor_headers)
    ).json()
    assert [i["id"] for i in sent["items"]] == [ids[4]]
    bad = await client.get("/api/v1/newsletters/weekly/issues?status=nope", headers=editor_headers)
    assert bad.status_code == 422


async def test_patch_changes_fields_and_replaces_stories(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    issue = await create(client, editor_headers)
    response = await client.patch(
        f"/api/v1/issues/{issue['id']}",
        json={"subject": "New subject", "stories": [{"title": "Only one"}]},
        headers=editor_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] == "New subject"
    assert body["preheader"] == "Short and sweet"
    assert [s["title"] for s in body["stories"]] == ["Only one"]
    count = await session.scalar(select(func.count()).select_from(Story))
    assert count == 1


async def test_append_story_adds_it_at_the_end(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    issue = await create(client, editor_headers)
    response = await client.post(
        f"/api/v1/issues/{issue['id']}/stories",
        json={"title": "Third", "url": "https://example.org/3"},
        headers=editor_headers,
    )
    assert response.status_code == 201, response.text
    assert [s["title"] for s in response.json()["stories"]] == ["First", "Second", "Third"]


async def test_concurrent_appends_each_get_their_own_position(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    issue = await create(client, editor_headers)
    results = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/issues/{issue['id']}/stories",
                json={"title": f"Added {i}"},
                headers=editor_headers,
            )
            for i in range(8)
        )
    )
    assert all(r.status_code == 201 for r in results), [r.text for r in results]
    final = (await client.get(f"/api/v1/issues/{issue['id']}", headers=editor_headers)).json()
    positions = [s["position"] for s in final["stories"]]
    assert len(final["stories"]) == 10
    assert positions == sorted(set(positions))


@pytest.mark.parametrize("status", ["scheduled", "sending", "paused", "sent", "cancelled"])
async def test_issue_past_ready_cannot_be_changed_deleted_or_appended_to(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession, status: str
) -> None:
    await create_newsletter(session)
    issue = await create(client, editor_headers)
    await session.execute(update(Issue).where(Issue.id == issue["id"]).values(status=status))
    await session.commit()
    url = f"/api/v1/issues/{issue['id']}"
    patched = await client.patch(url, json={"subject": "x"}, headers=editor_headers)
    assert patched.status_code == 409
    assert status in patched.json()["detail"]
    assert (await client.delete(url, headers=editor_headers)).status_code == 409
    appended = await client.post(f"{url}/stories", json={"title": "t"}, headers=editor_headers)
    assert appended.status_code == 409


async def test_draft_and_ready_issues_can_be_deleted(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    for status in ("draft", "ready"):
        issue = await create(client, editor_headers)
        await session.execute(update(Issue).where(Issue.id == issue["id"]).values(status=status))
        await session.commit()
        url = f"/api/v1/issues/{issue['id']}"
        assert (await client.delete(url, headers=editor_headers)).status_code == 204
        assert (await client.get(url, headers=editor_headers)).status_code == 404
    assert await session.scalar(select(func.count()).select_from(Story)) == 0


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"stories": []}, ["body", "subject"]),
        ({"subject": ""}, ["body", "subject"]),
        ({"subject": "   "}, ["body", "subject"]),
        ({"subject": "x" * 301}, ["body", "subject"]),
        ({"subject": "Hello\r\nBcc: victim@example.com"}, ["body", "subject"]),
        ({"subject": "Hello\nthere"}, ["body", "subject"]),
        ({"subject": "Hello\u2028there"}, ["body", "subject"]),
        ({"subject": "Hello\x85there"}, ["body", "subject"]),
        ({"subject": "ok", "preheader": "a\rb"}, ["body", "preheader"]),
        ({"subject": "ok", "stories": [{"body": "no title"}]}, ["body", "stories", "0", "title"]),
        ({"subject": "ok", "stories": [{"title": ""}]}, ["body", "stories", "0", "title"]),
        (
            {"subject": "ok", "stories": [{"title": "t", "url": "javascript:alert(1)"}]},
            ["body", "stories", "0", "url"],
        ),
        (
            {"subject": "ok", "stories": [{"title": "t", "url": "/relative"}]},
            ["body", "stories", "0", "url"],
        ),
        (
            {"subject": "ok", "stories": [{"title": "t", "image_url": "data:image/png;base64,x"}]},
            ["body", "stories", "0", "image_url"],
        ),
        (
            {"subject": "ok", "stories": [{"title": "t", "url": "https://e.org/a b"}]},
            ["body", "stories", "0", "url"],
        ),
        (
            {"subject": "ok", "stories": [{"title": "a\nb"}]},
            ["body", "stories", "0", "title"],
        ),
        ({"subject": "ok", "extra": 1}, ["body", "extra"]),
        ({"subject": "ok", "stories": [{"title": "t", "colour": "red"}]}, None),
        ({"subject": "ok", "intro": "nul \x00 byte"}, ["body", "intro"]),
    ],
)
async def test_invalid_input_is_refused_with_422_naming_the_field(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    payload: dict[str, Any],
    loc: list[str] | None,
) -> None:
    await create_newsletter(session)
    response = await client.post(
        "/api/v1/newsletters/weekly/issues", json=payload, headers=editor_headers
    )
    assert response.status_code == 422, response.text
    if loc is not None:
        assert loc in [error["loc"] for error in response.json()["detail"]]
    assert await session.scalar(select(func.count()).select_from(Issue)) == 0


async def test_patch_with_a_line_break_in_the_subject_is_refused(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    issue = await create(client, editor_headers)
    response = await client.patch(
        f"/api/v1/issues/{issue['id']}",
        json={"subject": "x\r\nBcc: a@b.c"},
        headers=editor_headers,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "subject"]


async def test_unknown_newsletter_or_issue_is_404_and_no_key_is_401(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    missing = await client.post(
        "/api/v1/newsletters/nope/issues", json={"subject": "x"}, headers=editor_headers
    )
    assert missing.status_code == 404
    assert (await client.get("/api/v1/issues/999", headers=editor_headers)).status_code == 404
    assert (await client.get("/api/v1/newsletters/weekly/issues")).status_code == 401
    assert (await client.get("/api/v1/issues/1/preview")).status_code == 401
