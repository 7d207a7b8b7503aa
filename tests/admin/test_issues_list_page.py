"""The issues list, new issue, duplicate, and the schedule view (SPEC section 11)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import (
    AuditEvent,
    Delivery,
    Event,
    Issue,
    Newsletter,
    ScheduleTick,
    Story,
    Subscription,
)
from tests.admin.support import ORIGIN, Editor
from tests.factories import create_issue, create_newsletter


async def _sent_issue_with_opens(session: AsyncSession) -> tuple[Newsletter, Issue]:
    newsletter = await create_newsletter(session, readers=4, track_opens=True)
    issue = await create_issue(
        session,
        newsletter,
        status="sent",
        subject="Sent with opens",
        recipients=4,
        started_at=utcnow() - timedelta(hours=2),
        sent_at=utcnow() - timedelta(hours=1),
    )
    ids = (await session.execute(select(Subscription.id))).scalars().all()
    for n, subscription_id in enumerate(ids):
        status = "sent" if n < 3 else "failed"
        result = await session.execute(
            insert(Delivery)
            .values(issue_id=issue.id, subscription_id=subscription_id, status=status)
            .returning(Delivery.id)
        )
        delivery_id = result.scalar_one()
        if n < 2:
            await session.execute(
                insert(Event).values(
                    kind="open",
                    delivery_id=delivery_id,
                    issue_id=issue.id,
                    subscription_id=subscription_id,
                )
            )
    await session.commit()
    return newsletter, issue


async def test_the_issues_list_shows_status_progress_and_opens(
    editor: Editor, session: AsyncSession
) -> None:
    newsletter, issue = await _sent_issue_with_opens(session)
    draft = await create_issue(session, newsletter)

    page = await editor.client.get("/admin/newsletters/weekly/issues")

    assert page.status_code == 200
    text = page.text
    assert "Sent with opens" in text
    assert "badge-sent" in text
    assert "badge-draft" in text
    assert '<progress max="4" value="4"' in text
    assert "3 sent, 1 failed" in text
    assert "Opens" in text
    assert "66.7%" in text
    assert "Clicks" not in text  # not tracked
    assert text.index(f"/admin/issues/{draft.id}") < text.index(f"/admin/issues/{issue.id}")
    assert 'aria-current="page">Issues' in text


async def test_the_issues_list_pages_by_keyset(editor: Editor, session: AsyncSession) -> None:
    newsletter = await create_newsletter(session)
    for n in range(27):
        await create_issue(session, newsletter, stories=0, subject=f"Subject number {n + 1}")
    first = await editor.client.get("/admin/newsletters/weekly/issues")
    assert "Subject number 27" in first.text
    assert "Subject number 3<" in first.text
    assert "Subject number 2<" not in first.text
    href = first.text.split('href="/admin/newsletters/weekly/issues?before=', 1)[1]
    older = await editor.client.get(
        "/admin/newsletters/weekly/issues?before=" + href.split('"', 1)[0]
    )
    assert "Subject number 2<" in older.text
    assert "Subject number 1<" in older.text
    assert "Subject number 3<" not in older.text
    bad = await editor.client.get("/admin/newsletters/weekly/issues?before=abc")
    assert bad.status_code == 422


async def test_an_empty_newsletter_invites_the_first_issue(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session)
    page = await editor.client.get("/admin/newsletters/weekly/issues")
    assert "No issues yet: write the first one" in page.text


async def test_new_issue_creates_a_draft_and_opens_the_editor(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session)
    response: Any = await editor.post("/admin/newsletters/weekly/issues")
    assert response.status_code == 303
    issue = (await session.execute(select(Issue))).scalar_one()
    assert response.headers["location"] == f"/admin/issues/{issue.id}"
    assert issue.status == "draft"
    assert issue.number == 1
    assert issue.subject.startswith("The Weekly — week of")
    audit = (await session.execute(select(AuditEvent))).scalar_one()
    assert (audit.actor, audit.action) == ("user editor@example.com", "issue.create")


async def test_new_issue_needs_the_csrf_token(editor: Editor, session: AsyncSession) -> None:
    await create_newsletter(session)
    response = await editor.client.post(
        "/admin/newsletters/weekly/issues", data={}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 403
    assert (await session.execute(select(func.count()).select_from(Issue))).scalar_one() == 0


async def test_duplicate_copies_an_issue_into_a_new_draft(
    editor: Editor, session: AsyncSession
) -> None:
    _, issue = await _sent_issue_with_opens(session)
    response: Any = await editor.post(f"/admin/issues/{issue.id}/duplicate")
    assert response.status_code == 303
    copy = (await session.execute(select(Issue).where(Issue.id != issue.id))).scalar_one()
    assert response.headers["location"] == f"/admin/issues/{copy.id}"
    assert (copy.status, copy.number, copy.subject) == ("draft", 2, "Sent with opens")
    stories = await session.execute(
        select(func.count()).select_from(Story).where(Story.issue_id == copy.id)
    )
    assert stories.scalar_one() == 3
    audit = (await session.execute(select(AuditEvent))).scalar_one()
    assert (audit.action, audit.detail) == ("issue.duplicate", f"from issue {issue.id}")


async def test_duplicating_a_missing_issue_is_a_404(editor: Editor) -> None:
    response: Any = await editor.post("/admin/issues/424242/duplicate")
    assert response.status_code == 404


async def test_the_schedule_page_shows_ticks_upcoming_and_recent_outcomes(
    editor: Editor, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(
        session, schedule_cron="0 9 * * MON", timezone="Europe/Berlin", auto_send_upcoming=True
    )
    await create_issue(session, newsletter, subject="Collecting stories")
    sent = await create_issue(session, newsletter, status="sent", subject="Last week")
    await session.execute(
        insert(ScheduleTick),
        [
            {
                "newsletter_id": newsletter.id,
                "tick_at": utcnow() - timedelta(days=7),
                "outcome": "sent",
                "issue_id": sent.id,
                "detail": None,
            },
            {
                "newsletter_id": newsletter.id,
                "tick_at": utcnow() - timedelta(days=14),
                "outcome": "skipped",
                "issue_id": None,
                "detail": "nothing ready to send",
            },
        ],
    )
    await session.commit()

    page = await editor.client.get("/admin/newsletters/weekly/schedule")

    assert page.status_code == 200
    text = page.text
    assert text.count("09:00 CE") >= 5  # five Monday ticks in Berlin, CET or CEST
    assert "Collecting stories" in text
    assert "badge-sent" in text
    assert "badge-skipped" in text
    assert "nothing ready to send" in text
    assert "Hands-off mode" in text
    assert ">On<" in text
    assert 'aria-current="page">Schedule' in text


async def test_a_schedule_without_cron_says_so(editor: Editor, session: AsyncSession) -> None:
    await create_newsletter(session)
    page = await editor.client.get("/admin/newsletters/weekly/schedule")
    assert "No regular schedule" in page.text
    assert "No scheduled times have passed yet" in page.text
