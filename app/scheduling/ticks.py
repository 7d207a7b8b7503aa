"""Cron ticks: each newsletter's due tick starts at most one send.

Each (newsletter, tick) is settled by inserting its `schedule_tick` row; the UNIQUE
constraint is the lock, and the row commits together with the send it started, so a
tick starts at most one send and a failed start leaves it unsettled for the next pass
to retry.

Missed ticks (everything was down): the latest tick within the grace window is acted
on once; earlier ones are recorded as `missed`, and so is a latest tick older than the
window.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.cron import CronError, Tick, ticks_between, validate_cron, validate_timezone
from app.kit.errors import BroadsheetError
from app.models import IssueStatus, TickOutcome
from app.scheduling import repository
from app.scheduling.repository import ScheduledNewsletter
from app.scheduling.results import TickResult, hours, iso, recipients, start_send
from app.settings import Settings

logger = logging.getLogger("broadsheet.scheduler")

# How far behind the grace window a pass looks for ticks to record as missed, and how
# many of those it records one by one (an every-minute schedule down for a day would
# otherwise write 1,440 rows); the first recorded row says how many were left out.
MISSED_LOOKBACK = timedelta(days=7)
MISSED_RECORDED = 20
# A ready issue another pass claimed in the meantime is passed over; a few candidates.
READY_CANDIDATES = 5


@dataclass(frozen=True, slots=True)
class _Plan:
    """The ticks of one newsletter a pass deals with: at most one to act on (`latest`,
    None when even the latest is past the grace window), the rest to record as missed."""

    newsletter: ScheduledNewsletter
    older: list[Tick]
    latest: Tick | None
    left_out: int  # missed ticks not recorded one by one (MISSED_RECORDED)
    now: datetime
    grace: timedelta

    def result(self, tick: Tick, outcome: str, issue_id: int | None, detail: str) -> TickResult:
        return TickResult(
            newsletter_id=self.newsletter.id,
            newsletter=self.newsletter.slug,
            kind="cron",
            tick_at=tick.utc,
            outcome=outcome,
            issue_id=issue_id,
            detail=detail,
        )

    async def record_missed(self, session: AsyncSession) -> list[TickResult]:
        """Insert a `missed` row for each older tick; a result for each row that went in."""
        results = []
        for index, tick in enumerate(self.older):
            if self.latest is not None and tick.utc >= self.now - self.grace:
                detail = f"superseded by the later tick at {iso(self.latest.utc)}; not sent"
            else:
                detail = f"not run within the {hours(self.grace)} grace window; not sent"
            if index == 0 and self.left_out:
                detail += f" ({self.left_out} earlier ticks were missed too and are not listed)"
            inserted = await repository.insert_tick(
                session,
                newsletter_id=self.newsletter.id,
                tick_at=tick.utc,
                outcome=TickOutcome.missed.value,
                detail=detail,
                now=self.now,
            )
            if inserted:
                results.append(self.result(tick, TickOutcome.missed.value, None, detail))
        return results


class _StartRefused(Exception):
    def __init__(self, issue_id: int, number: int, reason: str) -> None:
        super().__init__(reason)
        self.issue_id = issue_id
        self.number = number
        self.reason = reason


async def run_newsletter(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    newsletter: ScheduledNewsletter,
    *,
    now: datetime,
    grace: timedelta,
) -> list[TickResult]:
    """Settle the newsletter's ticks up to `now`: what this pass did about them."""
    plan = _plan(newsletter, now=now, grace=grace)
    if plan is None:
        return []
    if plan.latest is None:
        async with sessionmaker() as session:
            results = await plan.record_missed(session)
            await repository.advance_checked_at(session, newsletter.id, plan.older[-1].utc)
            await session.commit()
        return results
    try:
        return await _settle(settings, sessionmaker, plan, plan.latest)
    except _StartRefused as refused:
        return await _settle_refused(sessionmaker, plan, plan.latest, refused)


def _plan(newsletter: ScheduledNewsletter, *, now: datetime, grace: timedelta) -> _Plan | None:
    try:
        cron = validate_cron(newsletter.cron)
        zone = validate_timezone(newsletter.timezone)
    except CronError as exc:
        logger.warning("newsletter %s has an unusable schedule: %s", newsletter.slug, exc)
        return None
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
        return None
    older = list(window)
    latest: Tick | None = older.pop()
    assert latest is not None
    if latest.utc < now - grace:
        older.append(latest)
        latest = None
    return _Plan(newsletter, older, latest, total - len(window), now, grace)


async def _settle(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    plan: _Plan,
    tick: Tick,
) -> list[TickResult]:
    """Record the missed ticks and act on `tick`, all in one transaction; a send that
    refuses to start raises `_StartRefused`, with everything rolled back."""
    newsletter = plan.newsletter
    async with sessionmaker() as session:
        try:
            results = await plan.record_missed(session)
            # The tick row goes in first: it is the lock (see the module docstring).
            won = await repository.insert_tick(
                session,
                newsletter_id=newsletter.id,
                tick_at=tick.utc,
                outcome=TickOutcome.skipped.value,
                detail="settling",
                now=plan.now,
            )
            await repository.advance_checked_at(session, newsletter.id, tick.utc)
            if not won:
                await session.commit()
                return results
            outcome, issue_id, detail = await _act_on_tick(
                session, settings, newsletter, now=plan.now
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
        except BaseException:
            await session.rollback()
            raise
    results.append(plan.result(tick, outcome, issue_id, detail))
    return results


async def _settle_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
    plan: _Plan,
    tick: Tick,
    refusal: _StartRefused,
) -> list[TickResult]:
    # The send refused to start (its state or content): settle the tick as skipped with
    # the reason, rather than trying the same thing every few seconds. The transaction
    # that tried was rolled back, missed rows included, so they are recorded again here.
    newsletter = plan.newsletter
    detail = f"issue #{refusal.number} could not start: {refusal.reason}"
    async with sessionmaker() as session:
        results = await plan.record_missed(session)
        won = await repository.insert_tick(
            session,
            newsletter_id=newsletter.id,
            tick_at=tick.utc,
            outcome=TickOutcome.skipped.value,
            issue_id=refusal.issue_id,
            detail=detail,
            now=plan.now,
        )
        await repository.advance_checked_at(session, newsletter.id, tick.utc)
        await session.commit()
    if won:
        logger.warning("newsletter %s tick %s: %s", newsletter.slug, iso(tick.utc), detail)
        results.append(plan.result(tick, TickOutcome.skipped.value, refusal.issue_id, detail))
    return results


async def _act_on_tick(
    session: AsyncSession,
    settings: Settings,
    newsletter: ScheduledNewsletter,
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
        count = await start_send()(session, issue, settings=settings)
    except BroadsheetError as exc:
        raise _StartRefused(issue.id, issue.number, str(exc.detail)) from exc
    return (
        TickOutcome.sent.value,
        issue.id,
        f"started issue #{issue.number} to {recipients(count)}",
    )
