"""One-off schedules: a `scheduled` issue whose time has come starts, exactly once.

The pass claims the issue with a conditional UPDATE and starts the send in the same
transaction, so of any number of passes running at once, one wins. A schedule missed
by more than the grace window goes back to draft instead of going out late; so does
one whose send refuses to start.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.issues import lifecycle
from app.issues.lifecycle import Action
from app.kit.errors import BroadsheetError
from app.models import IssueStatus, TickOutcome
from app.scheduling import repository
from app.scheduling.repository import DueIssue
from app.scheduling.results import TickResult, hours, recipients, start_send
from app.settings import Settings

logger = logging.getLogger("broadsheet.scheduler")


async def run_one_off(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    due: DueIssue,
    *,
    now: datetime,
    grace: timedelta,
) -> TickResult | None:
    """Start `due`, or put it back to draft; None when another pass or the editor
    got there first."""
    if due.scheduled_at < now - grace:
        # Sending days late is worse than not sending: back to draft for the editor.
        # scheduled_at is kept, so the issue shows when it should have gone.
        if not await _back_to_draft(sessionmaker, due, now):
            return None
        return _result(
            due,
            TickOutcome.missed,
            f"issue #{due.number} was due more than {hours(grace)} ago; it is a draft again",
        )
    try:
        started = await _claim_and_start(settings, sessionmaker, due, now)
    except BroadsheetError as exc:
        refused = str(exc.detail)
    else:
        if started is None:
            return None  # another pass started it, or the editor unscheduled it
        return _result(
            due, TickOutcome.sent, f"started issue #{due.number} to {recipients(started)}"
        )
    # The send refused to start (its state or content): rather than trying again every
    # few seconds, the issue goes back to draft with the reason in the pass's output.
    if not await _back_to_draft(sessionmaker, due, now):
        return None
    logger.warning("scheduled issue %s could not start: %s", due.id, refused)
    return _result(
        due,
        TickOutcome.skipped,
        f"issue #{due.number} could not start: {refused}; it is a draft again",
    )


async def _claim_and_start(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    due: DueIssue,
    now: datetime,
) -> int | None:
    """Claim the issue and start its send in one transaction: the number of recipients,
    or None when the claim matched nothing. A refused send raises, rolled back."""
    async with sessionmaker() as session:
        try:
            if not await repository.claim_issue(
                session, due.id, IssueStatus.scheduled, now, due_by=now
            ):
                await session.rollback()
                return None
            issue = await repository.load_issue_for_send(session, due.id)
            count = await start_send()(session, issue, settings=settings)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    return count


async def _back_to_draft(
    sessionmaker: async_sessionmaker[AsyncSession], due: DueIssue, now: datetime
) -> bool:
    # Only if it is still the same schedule: an editor who rescheduled it meanwhile wins.
    async with sessionmaker() as session:
        moved = await lifecycle.move(
            session,
            due.id,
            Action.drop_schedule,
            if_scheduled_at=due.scheduled_at,
            updated_at=now,
        )
        await session.commit()
    return moved


def _result(due: DueIssue, outcome: TickOutcome, detail: str) -> TickResult:
    return TickResult(
        newsletter_id=due.newsletter_id,
        newsletter=due.slug,
        kind="one-off",
        tick_at=due.scheduled_at,
        outcome=outcome.value,
        issue_id=due.id,
        detail=detail,
    )
