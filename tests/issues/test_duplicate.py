"""POST /api/v1/issues/{id}/duplicate: a new draft with the same content (SPEC section 12)."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEvent
from tests.factories import create_issue, create_newsletter

STORY_KEYS = ("position", "title", "body", "url", "source", "image_url", "image_alt")


async def test_a_sent_issue_is_copied_as_a_new_numbered_draft(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    sent = await create_issue(session, newsletter, stories=3, status="sent", recipients=40)
    await create_issue(session, newsletter, stories=0)  # number 2

    response = await client.post(f"/api/v1/issues/{sent.id}/duplicate", headers=editor_headers)

    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["id"] != sent.id
    assert copy["number"] == 3
    assert copy["status"] == "draft"
    assert copy["newsletter"] == "weekly"
    assert copy["sent_at"] is None
    assert copy["scheduled_at"] is None
    original = (await client.get(f"/api/v1/issues/{sent.id}", headers=editor_headers)).json()
    for key in ("subject", "preheader", "intro", "outro"):
        assert copy[key] == original[key]
    assert [{k: s[k] for k in STORY_KEYS} for s in copy["stories"]] == [
        {k: s[k] for k in STORY_KEYS} for s in original["stories"]
    ]
    assert {s["id"] for s in copy["stories"]}.isdisjoint({s["id"] for s in original["stories"]})
    assert original["status"] == "sent"


async def test_the_copy_is_independent_of_the_original(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=2)
    copy = (
        await client.post(f"/api/v1/issues/{issue.id}/duplicate", headers=editor_headers)
    ).json()

    patched = await client.patch(
        f"/api/v1/issues/{copy['id']}",
        json={"subject": "Changed", "stories": [{"title": "Only one"}]},
        headers=editor_headers,
    )
    assert patched.status_code == 200

    original = (await client.get(f"/api/v1/issues/{issue.id}", headers=editor_headers)).json()
    assert original["subject"] == "This week: findings, quotes & more"
    assert len(original["stories"]) == 2


async def test_duplicating_an_issue_without_stories_works(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, stories=0, intro="")
    response = await client.post(f"/api/v1/issues/{issue.id}/duplicate", headers=editor_headers)
    assert response.status_code == 201
    assert response.json()["stories"] == []


async def test_an_unknown_issue_is_404_and_a_key_is_needed(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter)
    missing = await client.post("/api/v1/issues/999999/duplicate", headers=editor_headers)
    assert missing.status_code == 404
    assert "999999" in missing.json()["detail"]
    assert (await client.post(f"/api/v1/issues/{issue.id}/duplicate")).status_code == 401


async def test_create_duplicate_and_delete_are_audited_with_the_key_name(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    await create_newsletter(session)
    created = await client.post(
        "/api/v1/newsletters/weekly/issues", json={"subject": "Hello"}, headers=editor_headers
    )
    issue_id = created.json()["id"]
    copy = await client.post(f"/api/v1/issues/{issue_id}/duplicate", headers=editor_headers)
    copy_id = copy.json()["id"]
    deleted = await client.delete(f"/api/v1/issues/{copy_id}", headers=editor_headers)
    assert deleted.status_code == 204

    rows = (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
    assert [(r.actor, r.action, r.subject) for r in rows] == [
        ("key test editor", "issue.create", f"issue {issue_id}"),
        ("key test editor", "issue.duplicate", f"issue {copy_id}"),
        ("key test editor", "issue.delete", f"issue {copy_id}"),
    ]
    assert rows[1].detail == f"from issue {issue_id}"


async def test_a_refused_delete_writes_no_audit_row(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter, status="sent")
    response = await client.delete(f"/api/v1/issues/{issue.id}", headers=editor_headers)
    assert response.status_code == 409
    rows = (await session.execute(select(AuditEvent))).scalars().all()
    assert rows == []
