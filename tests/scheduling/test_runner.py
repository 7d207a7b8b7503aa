"""The scheduler pass: each tick settled once, ready issues first, drafts never (unless
the newsletter says so), missed ticks inside and outside the grace window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import create_engine, create_sessionmaker
from app.models import IssueStatus
from app.scheduling.runner import run_scheduler_pass
from app.settings import Settings
from tests.conftest import make_settings
from tests.factories import (
    create_issue,
    create_scheduled_newsletter,
    delivery_count,
    issue_status,
    schedule_ticks,
)

MONDAY_0900 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SessionMaker = async_sessionmaker[AsyncSession]


async def test_a_tick_with_nothing_ready_is_recorded_as_skipped_and_sends_nothing(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1)
    )
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=5))

    assert [(r.outcome, r.tick_at) for r in results] == [("skipped", MONDAY_0900)]
    assert await schedule_ticks(session, newsletter.id) == [(MONDAY_0900, "skipped", None)]


async def test_a_draft_is_never_sent_by_a_tick(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1)
    )
    draft = await create_issue(session, newsletter, stories=3)
    await session.commit()

    await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=5))

    assert await issue_status(session, draft.id) == "draft"
    assert await delivery_count(session, draft.id) == 0
    assert await schedule_ticks(session, newsletter.id) == [(MONDAY_0900, "skipped", None)]


async def test_nothing_happens_before_the_tick(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1)
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 - timedelta(seconds=1))

    assert results == []
    assert await issue_status(session, issue.id) == "ready"
    assert await schedule_ticks(session, newsletter.id) == []


async def test_the_oldest_ready_issue_goes_out_at_the_tick_and_only_once(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1), readers=3
    )
    older = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=2)
    )
    newer = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()

    first = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=5))
    again = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=10))

    assert [(r.outcome, r.issue_id) for r in first] == [("sent", older.id)]
    assert again == []
    assert await issue_status(session, older.id) == "sending"
    assert await delivery_count(session, older.id) == 3
    assert await issue_status(session, newer.id) == "ready"
    assert await schedule_ticks(session, newsletter.id) == [(MONDAY_0900, "sent", older.id)]


async def test_the_next_ready_issue_waits_for_the_next_tick(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1)
    )
    first = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=2)
    )
    second = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()
    next_monday = MONDAY_0900 + timedelta(days=7)

    await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(minutes=1))
    await run_scheduler_pass(settings, sessionmaker, next_monday + timedelta(minutes=1))

    assert await schedule_ticks(session, newsletter.id) == [
        (MONDAY_0900, "sent", first.id),
        (next_monday, "sent", second.id),
    ]


async def test_auto_send_upcoming_sends_the_upcoming_draft_when_nothing_is_ready(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1), auto_send_upcoming=True
    )
    await create_issue(session, newsletter, stories=1)
    upcoming = await create_issue(session, newsletter, stories=2)
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=5))

    assert [(r.outcome, r.issue_id) for r in results] == [("sent", upcoming.id)]
    assert await issue_status(session, upcoming.id) == "sending"


async def test_auto_send_upcoming_does_not_send_a_draft_without_stories(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1), auto_send_upcoming=True
    )
    empty = await create_issue(session, newsletter, stories=0)
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=5))

    assert [r.outcome for r in results] == ["skipped"]
    assert "no stories" in results[0].detail
    assert await issue_status(session, empty.id) == "draft"


async def test_a_ready_issue_is_preferred_to_the_upcoming_draft(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1), auto_send_upcoming=True
    )
    ready = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    draft = await create_issue(session, newsletter, stories=2)
    await session.commit()

    await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(seconds=5))

    assert await issue_status(session, ready.id) == "sending"
    assert await issue_status(session, draft.id) == "draft"


async def test_two_passes_at_once_start_one_send(
    session: AsyncSession, database_url: str, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1), readers=5
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()
    # Two workers: separate engines, so separate connections and transactions.
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        makers = [create_sessionmaker(engine) for engine in engines]
        now = MONDAY_0900 + timedelta(seconds=5)
        outcomes = await asyncio.gather(
            *(run_scheduler_pass(settings, maker, now) for maker in makers for _ in range(3))
        )
    finally:
        for engine in engines:
            await engine.dispose()

    sent = [r for results in outcomes for r in results if r.outcome == "sent"]
    assert [r.issue_id for r in sent] == [issue.id]
    assert await delivery_count(session, issue.id) == 5
    assert await schedule_ticks(session, newsletter.id) == [(MONDAY_0900, "sent", issue.id)]


async def test_a_missed_tick_within_the_grace_window_is_sent_once_on_recovery(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    assert settings.schedule_grace_hours == 6
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(days=7)
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()
    back_up = MONDAY_0900 + timedelta(hours=5, minutes=50)

    first = await run_scheduler_pass(settings, sessionmaker, back_up)
    again = await run_scheduler_pass(settings, sessionmaker, back_up + timedelta(minutes=1))

    assert [(r.outcome, r.tick_at) for r in first] == [("sent", MONDAY_0900)]
    assert again == []
    assert await issue_status(session, issue.id) == "sending"


async def test_a_missed_tick_outside_the_grace_window_is_recorded_and_not_sent(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(days=7)
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()
    back_up = MONDAY_0900 + timedelta(hours=6, minutes=10)

    results = await run_scheduler_pass(settings, sessionmaker, back_up)
    again = await run_scheduler_pass(settings, sessionmaker, back_up + timedelta(minutes=1))

    assert [(r.outcome, r.tick_at) for r in results] == [("missed", MONDAY_0900)]
    assert "grace window" in results[0].detail
    assert again == []
    assert await issue_status(session, issue.id) == "ready"
    assert await delivery_count(session, issue.id) == 0
    # It goes out at the next tick instead.
    next_monday = MONDAY_0900 + timedelta(days=7)
    await run_scheduler_pass(settings, sessionmaker, next_monday + timedelta(seconds=3))
    assert await schedule_ticks(session, newsletter.id) == [
        (MONDAY_0900, "missed", None),
        (next_monday, "sent", issue.id),
    ]


async def test_of_several_missed_ticks_only_the_latest_within_the_window_is_sent(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, cron="0 * * * *", checked_at=MONDAY_0900 - timedelta(minutes=1)
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()

    await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(hours=3, minutes=1))

    hours = [MONDAY_0900 + timedelta(hours=h) for h in range(4)]
    assert await schedule_ticks(session, newsletter.id) == [
        (hours[0], "missed", None),
        (hours[1], "missed", None),
        (hours[2], "missed", None),
        (hours[3], "sent", issue.id),
    ]


async def test_a_long_outage_records_a_bounded_number_of_missed_ticks(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, cron="* * * * *", checked_at=MONDAY_0900 - timedelta(days=2)
    )
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900)

    rows = await schedule_ticks(session, newsletter.id)
    assert len(rows) == 21
    assert rows[-1] == (MONDAY_0900, "skipped", None)
    assert "earlier ticks were missed too" in results[0].detail


async def test_a_due_one_off_schedule_starts_once(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(session, cron=None, readers=2)
    at = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)
    issue = await create_issue(session, newsletter, status=IssueStatus.scheduled, scheduled_at=at)
    await session.commit()

    early = await run_scheduler_pass(settings, sessionmaker, at - timedelta(seconds=1))
    due = await asyncio.gather(
        *(run_scheduler_pass(settings, sessionmaker, at + timedelta(seconds=2)) for _ in range(3))
    )

    assert early == []
    assert [(r.kind, r.outcome, r.issue_id) for results in due for r in results] == [
        ("one-off", "sent", issue.id)
    ]
    assert await issue_status(session, issue.id) == "sending"
    assert await delivery_count(session, issue.id) == 2


async def test_a_one_off_schedule_missed_beyond_the_grace_window_returns_to_draft(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(session, cron=None)
    at = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)
    issue = await create_issue(session, newsletter, status=IssueStatus.scheduled, scheduled_at=at)
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, at + timedelta(hours=7))

    assert [(r.outcome, r.issue_id) for r in results] == [("missed", issue.id)]
    assert await issue_status(session, issue.id) == "draft"
    assert await delivery_count(session, issue.id) == 0


async def _passes_every_five_minutes(
    settings: Settings, sessionmaker: SessionMaker, start: datetime, hours: int
) -> None:
    for step in range(hours * 12 + 1):
        await run_scheduler_pass(settings, sessionmaker, start + timedelta(minutes=5 * step))


@pytest.mark.parametrize(
    ("cron", "timezone", "local_midnight", "hours", "fired_at"),
    [
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            datetime(2026, 11, 1, 4, 0, tzinfo=UTC),  # 00:00 EDT
            4,
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # the first 01:30 (EDT)
            id="new york fall-back night fires the repeated 01:30 tick once",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 22, 0, tzinfo=UTC),  # 00:00 CEST
            5,
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST)
            id="berlin fall-back night fires the repeated 02:30 tick once",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 23, 0, tzinfo=UTC),  # 00:00 CET
            4,
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 CEST
            id="berlin spring-forward night fires the missing 02:30 tick once at 03:30",
        ),
        pytest.param(
            "30 2 * * *",
            "America/New_York",
            datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # 00:00 EST
            4,
            datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # 03:30 EDT
            id="new york spring-forward night fires the missing 02:30 tick once at 03:30",
        ),
    ],
)
async def test_a_daylight_saving_night_fires_its_tick_exactly_once(
    session: AsyncSession,
    sessionmaker: SessionMaker,
    settings: Settings,
    cron: str,
    timezone: str,
    local_midnight: datetime,
    hours: int,
    fired_at: datetime,
) -> None:
    newsletter = await create_scheduled_newsletter(
        session, cron=cron, timezone=timezone, checked_at=local_midnight
    )
    await session.commit()

    await _passes_every_five_minutes(settings, sessionmaker, local_midnight, hours=hours)

    assert await schedule_ticks(session, newsletter.id) == [(fired_at, "skipped", None)]


async def test_an_unusable_stored_schedule_is_passed_over(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    broken = await create_scheduled_newsletter(session, cron="0 0 30 2 *", checked_at=MONDAY_0900)
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(days=3))

    assert results == []
    assert await schedule_ticks(session, broken.id) == []


async def test_a_grace_window_of_zero_still_sends_a_tick_a_pass_reaches_a_minute_late(
    session: AsyncSession, sessionmaker: SessionMaker, database_url: str, settings: Settings
) -> None:
    no_grace = make_settings(database_url, 1025, schedule_grace_hours=0)
    newsletter = await create_scheduled_newsletter(
        session, checked_at=MONDAY_0900 - timedelta(hours=1)
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=MONDAY_0900 - timedelta(days=1)
    )
    await session.commit()

    results = await run_scheduler_pass(no_grace, sessionmaker, MONDAY_0900 + timedelta(minutes=1))

    assert [(r.outcome, r.issue_id) for r in results] == [("sent", issue.id)]


async def test_a_newsletter_never_settled_starts_from_its_last_edit(
    session: AsyncSession, sessionmaker: SessionMaker, settings: Settings
) -> None:
    newsletter = await create_scheduled_newsletter(session, checked_at=None)
    # The schedule was set a minute after Monday's tick: that tick is not its to act on.
    newsletter.updated_at = MONDAY_0900 + timedelta(minutes=1)
    await session.commit()

    results = await run_scheduler_pass(settings, sessionmaker, MONDAY_0900 + timedelta(minutes=2))

    assert results == []
    assert await schedule_ticks(session, newsletter.id) == []


async def test_passes_racing_over_different_ticks_never_start_an_issue_twice(
    session: AsyncSession, database_url: str, settings: Settings
) -> None:
    start = MONDAY_0900
    newsletter = await create_scheduled_newsletter(
        session, cron="* * * * *", checked_at=start - timedelta(seconds=30), readers=3
    )
    issues = [
        await create_issue(
            session, newsletter, status=IssueStatus.ready, ready_at=start - timedelta(hours=h)
        )
        for h in (3, 2, 1)
    ]
    await session.commit()
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        makers = [create_sessionmaker(engine) for engine in engines]
        # Workers whose clocks (or pass times) straddle several minute ticks.
        await asyncio.gather(
            *(
                run_scheduler_pass(settings, makers[i % 3], start + timedelta(seconds=20 * i))
                for i in range(9)
            )
        )
    finally:
        for engine in engines:
            await engine.dispose()

    rows = await schedule_ticks(session, newsletter.id)
    assert [row[0] for row in rows] == [start + timedelta(minutes=m) for m in range(3)]
    sent_issue_ids = [row[2] for row in rows if row[1] == "sent"]
    assert len(sent_issue_ids) == len(set(sent_issue_ids)) >= 1
    for issue in issues:
        expected = 3 if issue.id in sent_issue_ids else 0
        assert await delivery_count(session, issue.id) == expected
        assert await issue_status(session, issue.id) == ("sending" if expected else "ready")
