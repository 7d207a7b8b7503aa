"""The editor's side of scheduling: ready, one-off schedules, the upcoming draft, the
schedule overview."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import set_clock
from app.models import Issue, IssueStatus, Story
from app.scheduling.runner import run_scheduler_pass
from app.settings import Settings
from tests.factories import create_issue, create_scheduled_newsletter

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday
# A year whose 7 December is ahead of the real clock, which the schedule endpoint reads.
AHEAD = datetime.now(UTC).year + 1
Headers = dict[str, str]


@pytest.fixture(autouse=True)
def fixed_clock() -> Iterator[None]:
    set_clock(lambda: NOW)
    yield
    set_clock(None)


@pytest.fixture
async def issue(session: AsyncSession) -> Issue:
    """A draft with stories in a newsletter on a weekly schedule."""
    return await create_issue(session, await create_scheduled_newsletter(session))


async def test_marking_a_draft_ready_makes_it_the_next_issue(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(session, newsletter, stories=2)
    await session.commit()

    response = await client.post(f"/api/v1/issues/{issue.id}/ready", headers=editor_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["stories"] == 2
    assert datetime.fromisoformat(body["ready_at"]) == NOW


async def test_marking_a_ready_issue_ready_again_changes_nothing(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    earlier = NOW - timedelta(days=1)
    issue = await create_issue(session, newsletter, status=IssueStatus.ready, ready_at=earlier)
    await session.commit()

    response = await client.post(f"/api/v1/issues/{issue.id}/ready", headers=editor_headers)

    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["ready_at"]) == earlier


async def test_an_empty_issue_cannot_be_marked_ready(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(session, newsletter, stories=0, intro="")
    await session.commit()

    response = await client.post(f"/api/v1/issues/{issue.id}/ready", headers=editor_headers)

    assert response.status_code == 422
    assert "empty" in response.text


@pytest.mark.parametrize("status", [IssueStatus.sending, IssueStatus.sent, IssueStatus.scheduled])
async def test_only_a_draft_can_be_marked_ready(
    status: IssueStatus, session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(session, newsletter, status=status)
    await session.commit()

    response = await client.post(f"/api/v1/issues/{issue.id}/ready", headers=editor_headers)

    assert response.status_code == 409
    assert status.value in response.json()["detail"]


async def test_a_ready_issue_can_go_back_to_draft(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(session, newsletter, status=IssueStatus.ready, ready_at=NOW)
    await session.commit()

    response = await client.delete(f"/api/v1/issues/{issue.id}/ready", headers=editor_headers)

    assert response.status_code == 200
    assert response.json()["status"] == "draft"
    assert response.json()["ready_at"] is None


async def test_scheduling_sets_the_time_in_utc(
    issue: Issue, client: AsyncClient, editor_headers: Headers
) -> None:
    response = await client.post(
        f"/api/v1/issues/{issue.id}/schedule",
        json={"at": f"{AHEAD}-12-07T09:00:00+01:00"},
        headers=editor_headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "scheduled"
    assert datetime.fromisoformat(response.json()["scheduled_at"]) == datetime(
        AHEAD, 12, 7, 8, 0, tzinfo=UTC
    )


async def test_a_time_without_an_offset_is_refused(
    issue: Issue, client: AsyncClient, editor_headers: Headers
) -> None:
    response = await client.post(
        f"/api/v1/issues/{issue.id}/schedule",
        json={"at": f"{AHEAD}-12-07T09:00:00"},
        headers=editor_headers,
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "at"]


async def test_a_time_in_the_past_is_refused(
    issue: Issue, client: AsyncClient, editor_headers: Headers
) -> None:
    response = await client.post(
        f"/api/v1/issues/{issue.id}/schedule",
        json={"at": (NOW - timedelta(minutes=1)).isoformat()},
        headers=editor_headers,
    )

    assert response.status_code == 422
    assert "past" in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "at"]


@pytest.mark.parametrize("at", ["9999-12-31T23:00:00-05:00", "2040-01-01T00:00:00Z"])
async def test_a_time_too_far_ahead_is_refused(
    at: str, session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(session, newsletter)
    await session.commit()

    response = await client.post(
        f"/api/v1/issues/{issue.id}/schedule", json={"at": at}, headers=editor_headers
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "at"]


async def test_a_sent_issue_cannot_be_scheduled(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(session, newsletter, status=IssueStatus.sent)
    await session.commit()

    response = await client.post(
        f"/api/v1/issues/{issue.id}/schedule",
        json={"at": f"{AHEAD}-12-07T09:00:00Z"},
        headers=editor_headers,
    )

    assert response.status_code == 409


@pytest.mark.parametrize("method", ["DELETE", "POST"])
async def test_unscheduling_returns_the_issue_to_draft(
    method: str, session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    issue = await create_issue(
        session, newsletter, status=IssueStatus.scheduled, scheduled_at=NOW + timedelta(days=1)
    )
    await session.commit()
    path = f"/api/v1/issues/{issue.id}/" + ("schedule" if method == "DELETE" else "unschedule")

    response = await client.request(method, path, headers=editor_headers)

    assert response.status_code == 200
    assert response.json()["status"] == "draft"
    assert response.json()["scheduled_at"] is None


async def test_an_unscheduled_issue_is_not_sent_when_its_time_comes(
    session: AsyncSession,
    client: AsyncClient,
    editor_headers: Headers,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    newsletter = await create_scheduled_newsletter(session, cron=None)
    issue = await create_issue(session, newsletter)
    await session.commit()
    at = NOW + timedelta(hours=1)
    await client.post(
        f"/api/v1/issues/{issue.id}/schedule", json={"at": at.isoformat()}, headers=editor_headers
    )
    await client.delete(f"/api/v1/issues/{issue.id}/schedule", headers=editor_headers)

    results = await run_scheduler_pass(settings, sessionmaker, at + timedelta(seconds=1))

    assert results == []


async def test_scheduling_needs_a_key_and_a_known_issue(
    issue: Issue, client: AsyncClient, editor_headers: Headers
) -> None:
    anonymous = await client.post(f"/api/v1/issues/{issue.id}/ready")
    unknown = await client.post("/api/v1/issues/999999/ready", headers=editor_headers)

    assert anonymous.status_code == 401
    assert unknown.status_code == 404


async def test_the_first_upcoming_story_creates_the_upcoming_draft(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, cron="0 9 * * MON", timezone="Europe/Berlin"
    )
    await session.commit()

    response = await client.post(
        f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories",
        json={"title": "A thing happened", "body": "Details.", "url": "https://example.com/a"},
        headers=editor_headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["issue_created"] is True
    assert body["issue"]["number"] == 1
    assert body["issue"]["status"] == "draft"
    # The next tick is Monday 30 November.
    assert body["issue"]["subject"] == f"{newsletter.name} — week of 30 November 2026"
    assert body["story"]["position"] == 0
    assert body["story"]["title"] == "A thing happened"


async def test_later_upcoming_stories_are_appended_to_the_same_draft(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    await session.commit()
    path = f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories"

    first = await client.post(path, json={"title": "One"}, headers=editor_headers)
    second = await client.post(path, json={"title": "Two"}, headers=editor_headers)

    assert second.status_code == 201
    assert second.json()["issue_created"] is False
    assert second.json()["issue"]["id"] == first.json()["issue"]["id"]
    assert second.json()["issue"]["stories"] == 2
    assert second.json()["story"]["position"] == 1


async def test_the_upcoming_draft_is_the_newest_draft(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    await create_issue(session, newsletter, stories=1)
    newest = await create_issue(session, newsletter, stories=3)
    await create_issue(session, newsletter, status=IssueStatus.ready, stories=1)
    await session.commit()

    response = await client.post(
        f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories",
        json={"title": "Four"},
        headers=editor_headers,
    )

    assert response.json()["issue"]["id"] == newest.id
    assert response.json()["story"]["position"] == 3


async def test_once_the_draft_is_ready_the_next_story_starts_a_new_draft(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    await session.commit()
    path = f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories"
    first = await client.post(path, json={"title": "One"}, headers=editor_headers)
    await client.post(f"/api/v1/issues/{first.json()['issue']['id']}/ready", headers=editor_headers)

    second = await client.post(path, json={"title": "Two"}, headers=editor_headers)

    assert second.json()["issue_created"] is True
    assert second.json()["issue"]["number"] == 2


async def test_concurrent_upcoming_stories_share_one_new_draft(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    await session.commit()
    path = f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories"

    responses = await asyncio.gather(
        *(client.post(path, json={"title": f"Story {i}"}, headers=editor_headers) for i in range(8))
    )

    assert [r.status_code for r in responses] == [201] * 8
    assert sum(r.json()["issue_created"] for r in responses) == 1
    issues = (
        (await session.execute(select(Issue).where(Issue.newsletter_id == newsletter.id)))
        .scalars()
        .all()
    )
    assert len(issues) == 1
    positions = (
        (await session.execute(select(Story.position).where(Story.issue_id == issues[0].id)))
        .scalars()
        .all()
    )
    assert sorted(positions) == list(range(8))


@pytest.mark.parametrize(
    "story",
    [
        {"title": ""},
        {"title": "Line\nbreak"},
        {"title": "Bad link", "url": "javascript:alert(1)"},
        {"title": "Bad image", "image_url": "ftp://example.com/x.png"},
        {"title": "Unknown field", "colour": "red"},
    ],
)
async def test_an_invalid_upcoming_story_is_refused(
    story: dict[str, str], session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session)
    await session.commit()

    response = await client.post(
        f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories",
        json=story,
        headers=editor_headers,
    )

    assert response.status_code == 422
    assert (await session.execute(select(Issue.id))).first() is None


async def test_upcoming_stories_for_an_unknown_newsletter_are_404(
    client: AsyncClient, editor_headers: Headers
) -> None:
    response = await client.post(
        "/api/v1/newsletters/no-such-thing/upcoming/stories",
        json={"title": "One"},
        headers=editor_headers,
    )

    assert response.status_code == 404


async def test_the_schedule_shows_next_ticks_issues_and_recent_outcomes(
    session: AsyncSession,
    client: AsyncClient,
    editor_headers: Headers,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    newsletter = await create_scheduled_newsletter(
        session,
        cron="0 9 * * MON",
        timezone="Europe/Berlin",
        checked_at=NOW - timedelta(days=3),
    )
    sent = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=NOW - timedelta(days=3)
    )
    ready = await create_issue(session, newsletter, status=IssueStatus.ready, ready_at=NOW)
    scheduled = await create_issue(
        session, newsletter, status=IssueStatus.scheduled, scheduled_at=NOW + timedelta(days=2)
    )
    upcoming = await create_issue(session, newsletter, stories=2)
    await session.commit()
    # The tick of Monday 23 November 09:00 (08:00 UTC) sent the older ready issue.
    await run_scheduler_pass(settings, sessionmaker, datetime(2026, 11, 23, 8, 1, tzinfo=UTC))

    response = await client.get(
        f"/api/v1/newsletters/{newsletter.slug}/schedule", headers=editor_headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cron"] == "0 9 * * MON"
    assert body["timezone"] == "Europe/Berlin"
    assert body["grace_hours"] == 6
    assert len(body["next_ticks"]) == 5
    assert body["next_ticks"][0] == {
        "local": "2026-11-30T09:00:00+01:00",
        "utc": "2026-11-30T08:00:00Z",
    }
    assert body["upcoming"]["id"] == upcoming.id
    assert body["upcoming"]["stories"] == 2
    assert [i["id"] for i in body["ready"]] == [ready.id]
    assert [i["id"] for i in body["scheduled"]] == [scheduled.id]
    assert body["recent_ticks"] == [
        {
            "tick_at": "2026-11-23T08:00:00Z",
            "outcome": "sent",
            "issue_id": sent.id,
            "detail": "started issue #1 to 2 recipients",
        }
    ]


async def test_a_newsletter_without_a_schedule_has_no_ticks(
    session: AsyncSession, client: AsyncClient, editor_headers: Headers
) -> None:
    newsletter = await create_scheduled_newsletter(session, cron=None)
    await session.commit()

    response = await client.get(
        f"/api/v1/newsletters/{newsletter.slug}/schedule", headers=editor_headers
    )

    assert response.status_code == 200
    assert response.json()["next_ticks"] == []
    assert response.json()["upcoming"] is None
    assert response.json()["recent_ticks"] == []


async def test_stories_appended_while_the_tick_sends_the_draft_are_never_lost(
    session: AsyncSession,
    client: AsyncClient,
    editor_headers: Headers,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    tick = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    newsletter = await create_scheduled_newsletter(
        session, checked_at=tick - timedelta(hours=1), auto_send_upcoming=True
    )
    draft = await create_issue(session, newsletter, stories=1)
    await session.commit()
    path = f"/api/v1/newsletters/{newsletter.slug}/upcoming/stories"
    newsletter_id, draft_id = newsletter.id, draft.id

    def append(i: int) -> asyncio.Task[Response]:
        body = {"title": f"Late story {i}"}
        return asyncio.create_task(client.post(path, json=body, headers=editor_headers))

    early = [append(i) for i in range(3)]
    tick_pass = asyncio.create_task(
        run_scheduler_pass(settings, sessionmaker, tick + timedelta(seconds=1))
    )
    late = [append(i) for i in range(3, 6)]
    responses = await asyncio.gather(*early, *late)
    await tick_pass

    assert [r.status_code for r in responses] == [201] * 6
    session.expire_all()
    issues = (
        (await session.execute(select(Issue).where(Issue.newsletter_id == newsletter_id)))
        .scalars()
        .all()
    )
    sent = next(i for i in issues if i.id == draft_id)
    assert sent.status in ("sending", "sent")
    sent_titles = (
        (await session.execute(select(Story.title).where(Story.issue_id == sent.id)))
        .scalars()
        .all()
    )
    # Every story of the sent issue made it into what was frozen for the readers; the
    # ones that came too late are in a new draft.
    assert sent.rendered_text is not None
    assert all(title in sent.rendered_text for title in sent_titles)
    total = (await session.execute(select(Story.id))).scalars().all()
    assert len(total) == 7
    assert len(issues) <= 2
