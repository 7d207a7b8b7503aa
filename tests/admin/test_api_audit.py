"""The REST API writes the audit log too, naming the key: sends, schedules, imports,
erasures and keys, seen on the dashboard's /admin/audit."""

from __future__ import annotations

from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import AuditEvent
from tests.admin.support import Editor
from tests.factories import create_issue, create_newsletter, create_subscription


async def audit_rows(session: AsyncSession) -> list[tuple[str, str, str, str]]:
    rows = (
        await session.scalars(
            select(AuditEvent).order_by(AuditEvent.id).execution_options(populate_existing=True)
        )
    ).all()
    return [(row.actor, row.action, row.subject, row.detail) for row in rows]


async def test_a_send_through_the_api_is_audited_with_the_keys_name(
    client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str], admin: Editor
) -> None:
    newsletter = await create_newsletter(session, readers=3)
    issue = await create_issue(session, newsletter)
    await session.commit()
    headers = {**editor_headers, "Idempotency-Key": "monday-send"}
    for _ in range(2):  # a retried request sends nothing more, and is not logged again
        response = await client.post(f"/api/v1/issues/{issue.id}/send", headers=headers)
        assert response.status_code == 202, response.text
    paused = await client.post(f"/api/v1/issues/{issue.id}/pause", headers=editor_headers)
    assert paused.status_code == 200, paused.text
    rows = await audit_rows(session)
    assert rows == [
        ("key test editor", "issue.send", f"issue {issue.id}", "3 recipients"),
        ("key test editor", "issue.pause", f"issue {issue.id}", ""),
    ]
    page = await admin.client.get("/admin/audit")
    assert "key test editor" in page.text
    assert "issue.send" in page.text


async def test_a_schedule_through_the_api_is_audited(
    client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str]
) -> None:
    newsletter = await create_newsletter(session)
    issue = await create_issue(session, newsletter)
    await session.commit()
    at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    response = await client.post(
        f"/api/v1/issues/{issue.id}/schedule", json={"at": at.isoformat()}, headers=editor_headers
    )
    assert response.status_code == 200, response.text
    unscheduled = await client.delete(f"/api/v1/issues/{issue.id}/schedule", headers=editor_headers)
    assert unscheduled.status_code == 200, unscheduled.text
    assert [(a, s) for _, a, s, _ in await audit_rows(session)] == [
        ("issue.schedule", f"issue {issue.id}"),
        ("issue.unschedule", f"issue {issue.id}"),
    ]


async def test_an_erasure_through_the_api_is_audited(
    client: AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    newsletter = await create_newsletter(session)
    await create_subscription(session, newsletter, "erase@example.com")
    await session.commit()
    response = await client.delete("/api/v1/subscribers/erase@example.com", headers=admin_headers)
    assert response.status_code == 204
    assert await audit_rows(session) == [
        ("key test admin", "subscriber.erase", "erase@example.com", "")
    ]


async def test_an_import_and_keys_through_the_api_are_audited(
    client: AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    newsletter = await create_newsletter(session)
    await session.commit()
    response = await client.post(
        f"/api/v1/newsletters/{newsletter.slug}/subscribers/import",
        content=b"email,name\nann@example.com,Ann\nnot-an-address,Bob\n",
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    made = await client.post(
        "/api/v1/keys", json={"name": "cron", "role": "editor"}, headers=admin_headers
    )
    assert made.status_code == 201
    key_id = made.json()["id"]
    assert (await client.delete(f"/api/v1/keys/{key_id}", headers=admin_headers)).status_code == 204
    assert await audit_rows(session) == [
        (
            "key test admin",
            "subscribers.import",
            f"newsletter {newsletter.slug}",
            "1 created, 0 updated, 0 skipped, 1 invalid",
        ),
        ("key test admin", "key.create", f"key {key_id} cron", "role editor"),
        ("key test admin", "key.revoke", f"key {key_id} cron", ""),
    ]
