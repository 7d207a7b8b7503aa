"""The scheduler pass: starts the sends that are due, each exactly once.

A pass is safe to run from any number of processes at once (the worker's loop every
few seconds, `broadsheet run-due` from a crontab, on several machines):

- one-off schedules: the pass claims a due `scheduled` issue with a conditional UPDATE
  and starts the send in the same transaction, so one pass wins;
- cron ticks: each (newsletter, tick) is settled by inserting its `schedule_tick` row;
  the UNIQUE constraint is the lock, and the row commits together with the send it
  started, so a tick starts at most one send and a failed start leaves it unsettled
  for the next pass to retry.

Missed ticks (everything was down): the latest tick within the grace window
(BROADSHEET_SCHEDULE_GRACE_HOURS) is acted on once; earlier ones are recorded as
`missed`, and so is a latest tick older than the window. A one-off schedule missed by
more than the window goes back to draft instead of going out late.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.issues import lifecycle
from app.issues.lifecycle import Action
from app.kit.clock import utcnow
from app.kit.cron import CronError, Tick, ticks_between, validate_cron, validate_timezone
from app.kit.db import create_engine, create_sessionmaker
from app.kit.errors import BroadsheetError
from app.models import IssueStatus, TickOutcome
from app.scheduling import repository
from app.scheduling.repository import DueIssue, ScheduledNewsletter
from app.settings import Settings

logger = logging.getLogger("broadsheet.scheduler")

StartSend = Callable[..., Awaitable[int]]

# How far behind the grace window a pass looks for ticks to record as missed, and how
# many of those it records one by one (an every-minute schedule down for a day would
# otherwise write 1,440 rows); the first recorded row says how many were left out.
MISSED_LOOKBACK = timedelta(days=7)
MISSED_RECORDED = 20
DUE_ONE_OFFS_PER_PASS = 100
# A ready issue another pass claimed in the meantime is passed over; a few candidates.
READY_CANDIDATES = 5
# A grace window shorter than this would make a pass that runs a little after its tick
# (a crontab runs once a minute) record it as missed; so it is never shorter.
MIN_GRACE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one pass did about one tick or one-off schedule."""

    newsletter_id: int
    newsletter: str  # slug
    kind: str  # "cron" or "one-off"
    tick_at: datetime
    outcome: str  # sent, skipped, missed
    issue_id: int | None
    detail: str

    def line(self) -> str:
        when = self.tick_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.newsletter} {self.kind} {when}: {self.outcome} - {self.detail}"


async def run_due_once(settings: Settings) -> list[str]:
    """One pass with its own engine (`broadsheet run-due`); a line per thing done.

    Nothing due prints nothing, so a crontab entry does not mail its owner every minute.
    """
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        # The lines are the output; logging them as well would say everything twice in
        # the mail cron sends. Failures are still logged (to stderr).
        results = await _run_pass(settings, create_sessionmaker(engine), utcnow())
    finally:
        await engine.dispose()
    return [result.line() for result in results]


async def run_scheduler_pass(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime | None = None,
) -> list[TickResult]:
    """Start every send that is due at `now` (default: the clock); what was done."""
    results = await _run_pass(settings, sessionmaker, now or utcnow())
    for result in results:
        logger.info("%s", result.line())
    return results


async def _run_pass(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], now: datetime
) -> list[TickResult]:
    now = now.astimezone(UTC)
    grace = max(timedelta(hours=settings.schedule_grace_hours), MIN_GRACE)
    results: list[TickResult] = []
    async with sessionmaker() as session:
        due = await repository.due_scheduled_issues(session, now, DUE_ONE_OFFS_PER_PASS)
        newsletters = await repository.scheduled_newsletters(session)
    for issue in due:
        try:
            result = await _run_one_off(settings, sessionmaker, issue, now=now, grace=grace)
        except Exception:
            logger.exception("could not start scheduled issue %s; retrying next pass", issue.id)
            continue
        if result is not None:
            results.append(result)
    for newsletter in newsletters:
        try:
            results.extend(
                await _run_newsletter(settings, sessionmaker, newsletter, now=now, grace=grace)
            )
        except Exception:
            logger.exception(
                "scheduler pass for newsletter %s failed; retrying next pass", newsletter.slug
            )
    return results


async def _run_one_off(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    due: DueIssue,
    *,
    now: datetime,
    grace: timedelta,
) -> TickResult | None:
    def result(outcome: TickOutcome, detail: str) -> TickResult:
        return TickResult(
            newsletter_id=due.newsletter_id,
            newsletter=due.slug,
            kind="one-off",
            tick_at=due.scheduled_at,
            outcome=outcome.value,
            issue_id=due.id,
            detail=detail,
        )

    if due.scheduled_at < now - grace:
        # Sending days late is worse than not sending: back to draft for the editor.
        # scheduled_at is kept, so the issue shows when it should have gone.
        async with sessionmaker() as session:
            moved = await lifecycle.move(
                session,
                due.id,
                Action.drop_schedule,
                if_scheduled_at=due.scheduled_at,
                updated_at=now,
            )
            await session.commit()
        if not moved:
            return None
        return result(
            TickOutcome.missed,
            f"issue #{due.number} was due more than {_hours(grace)} ago; it is a draft again",
        )
    async with sessionmaker() as session:
        try:
            if not await repository.claim_issue(
                session, due.id, IssueStatus.scheduled, now, due_by=now
            ):
                await session.rollback()
                return None  # another pass started it, or the editor unscheduled it
            issue = await repository.load_issue_for_send(session, due.id)
            recipients = await _start_send()(session, issue, settings=settings)
            await session.commit()
        except BroadsheetError as exc:
            await session.rollback()
            refused = str(exc.detail)
        except BaseException:
            await session.rollback()
            raise
        else:
            return result(
                TickOutcome.sent, f"started issue #{due.number} to {_recipients(recipients)}"
            )
    # The send refused to start (its state or content): rather than trying again every
    # few seconds, the issue goes back to draft with the reason in the pass's output.
    async with sessionmaker() as session:
        moved = await lifecycle.move(
            session,
            due.id,
            Action.drop_schedule,
            if_scheduled_at=due.scheduled_at,
            updated_at=now,
        )
        await session.commit()
    if not moved:
        return None
    logger.warning("scheduled issue %s could not start: %s", due.id, refused)
    return result(
        TickOutcome.skipped,
        f"issue #{due.number} could not start: {refused}; it is a draft again",
    )


async def _run_newsletter(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    newsletter: ScheduledNewsletter,
    *,
    now: datetime,
    grace: timedelta,
) -> list[TickResult]:
    try:
        cron = validate_cron(newsletter.cron)
        zone = validate_timezone(newsletter.timezone)
    except CronError as exc:
        logger.warning("newsletter %s has an unusable schedule: %s", newsletter.slug, exc)
        return []
    # Ticks are looked at from the last settled one; a newsletter never settled starts
    # from its last edit, so a schedule does not fire for times before it was set.
    baseline = newsletter.checked_at or newsletter.updated_at
    start = max(baseline, now - grace - MISSED_LOOKBACK)
    window: deque[Tick] = deque(maxlen=MISSED_RECORDED + 1)
    total = 0
    for tick in ticks_between(cron, zone, start, now):
        window.append(tick)
        total += 1
    if not window:
        return []
    older = list(window)
    latest: Tick | None = older.pop()
    assert latest is not None
    if latest.utc < now - grace:
        older.append(latest)
        latest = None
    left_out = total - len(window)

    results: list[TickResult] = []

    def add(tick: Tick, outcome: str, issue_id: int | None, detail: str) -> None:
        results.append(
            TickResult(
                newsletter_id=newsletter.id,
                newsletter=newsletter.slug,
                kind="cron",
                tick_at=tick.utc,
                outcome=outcome,
                issue_id=issue_id,
                detail=detail,
            )
        )

    async def record_missed(session: AsyncSession) -> None:
        for index, tick in enumerate(older):
            if latest is not None and tick.utc >= now - grace:
                detail = f"superseded by the later tick at {_iso(latest.utc)}; not sent"
            else:
                detail = f"not run within the {_hours(grace)} grace window; not sent"
            if index == 0 and left_out:
                detail += f" ({left_out} earlier ticks were missed too and are not listed)"
            inserted = await repository.insert_tick(
                session,
                newsletter_id=newsletter.id,
                tick_at=tick.utc,
                outcome=TickOutcome.missed.value,
                detail=detail,
                now=now,
            )
            if inserted:
                add(tick, TickOutcome.missed.value, None, detail)

    if latest is None:
        async with sessionmaker() as session:
            await record_missed(session)
            await repository.advance_checked_at(session, newsletter.id, older[-1].utc)
            await session.commit()
        return results

    tick = latest
    async with sessionmaker() as session:
        try:
            await record_missed(session)
            # The tick row goes in first: it is the lock (see the module docstring).
            won = await repository.insert_tick(
                session,
                newsletter_id=newsletter.id,
                tick_at=tick.utc,
                outcome=TickOutcome.skipped.value,
                detail="settling",
                now=now,
            )
            await repository.advance_checked_at(session, newsletter.id, tick.utc)
            if not won:
                await session.commit()
                return results
            outcome, issue_id, detail = await _act_on_tick(
                session, settings, newsletter, tick, now=now
            )
            await repository.record_tick_outcome(
                session,
                newsletter_id=newsletter.id,
                tick_at=tick.utc,
                outcome=outcome,
                issue_id=issue_id,
                detail=detail,
            )
            await session.commit()
            refusal = None
        except _StartRefused as refused:
            await session.rollback()
            refusal = refused
        except BaseException:
            await session.rollback()
            raise
    if refusal is None:
        add(tick, outcome, issue_id, detail)
        return results
    # The send refused to start (its state or content): settle the tick as skipped with
    # the reason, rather than trying the same thing every few seconds.
    results.clear()
    detail = f"issue #{refusal.number} could not start: {refusal.reason}"
    async with sessionmaker() as session:
        await record_missed(session)
        won = await repository.insert_tick(
            session,
            newsletter_id=newsletter.id,
            tick_at=tick.utc,
            outcome=TickOutcome.skipped.value,
            issue_id=refusal.issue_id,
            detail=detail,
            now=now,
        )
        await repository.advance_checked_at(session, newsletter.id, tick.utc)
        await session.commit()
    if won:
        logger.warning("newsletter %s tick %s: %s", newsletter.slug, _iso(tick.utc), detail)
        add(tick, TickOutcome.skipped.value, refusal.issue_id, detail)
    return results


class _StartRefused(Exception):
    def __init__(self, issue_id: int, number: int, reason: str) -> None:
        super().__init__(reason)
        self.issue_id = issue_id
        self.number = number
        self.reason = reason


async def _act_on_tick(
    session: AsyncSession,
    settings: Settings,
    newsletter: ScheduledNewsletter,
    tick: Tick,
    *,
    now: datetime,
) -> tuple[str, int | None, str]:
    """Start the oldest ready issue (or the upcoming draft, if the newsletter says so)."""
    for issue_id in await repository.ready_issue_ids(session, newsletter.id, READY_CANDIDATES):
        if await repository.claim_issue(session, issue_id, IssueStatus.ready, now):
            return await _start(session, settings, issue_id)
    if newsletter.auto_send_upcoming:
        draft = await repository.upcoming_draft(session, newsletter.id)
        if draft is not None:
            stories = (await repository.story_counts(session, [draft.id])).get(draft.id, 0)
            if stories == 0:
                return (
                    TickOutcome.skipped.value,
                    None,
                    f"nothing ready; the upcoming draft #{draft.number} has no stories",
                )
            if await repository.claim_issue(session, draft.id, IssueStatus.draft, now):
                return await _start(session, settings, draft.id)
    return TickOutcome.skipped.value, None, "nothing ready to send"


async def _start(session: AsyncSession, settings: Settings, issue_id: int) -> tuple[str, int, str]:
    issue = await repository.load_issue_for_send(session, issue_id)
    try:
        recipients = await _start_send()(session, issue, settings=settings)
    except BroadsheetError as exc:
        raise _StartRefused(issue.id, issue.number, str(exc.detail)) from exc
    return (
        TickOutcome.sent.value,
        issue.id,
        f"started issue #{issue.number} to {_recipients(recipients)}",
    )


def _start_send() -> StartSend:
    # Imported when a send is due: the delivery engine and rendering are most of the
    # start-up time of a `run-due` that, most minutes, has nothing to do.
    from app.delivery.service import start_send

    return start_send


def _recipients(count: int) -> str:
    return "1 recipient" if count == 1 else f"{count} recipients"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h"
