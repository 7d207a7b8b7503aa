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
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import create_engine, create_sessionmaker
from app.scheduling import repository
from app.scheduling.oneoff import run_one_off
from app.scheduling.results import TickResult
from app.scheduling.ticks import run_newsletter
from app.settings import Settings

__all__ = ["TickResult", "run_due_once", "run_scheduler_pass"]

logger = logging.getLogger("broadsheet.scheduler")

DUE_ONE_OFFS_PER_PASS = 100
# A grace window shorter than this would make a pass that runs a little after its tick
# (a crontab runs once a minute) record it as missed; so it is never shorter.
MIN_GRACE = timedelta(minutes=5)


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
            result = await run_one_off(settings, sessionmaker, issue, now=now, grace=grace)
        except Exception:
            logger.exception("could not start scheduled issue %s; retrying next pass", issue.id)
            continue
        if result is not None:
            results.append(result)
    for newsletter in newsletters:
        try:
            results.extend(
                await run_newsletter(settings, sessionmaker, newsletter, now=now, grace=grace)
            )
        except Exception:
            logger.exception(
                "scheduler pass for newsletter %s failed; retrying next pass", newsletter.slug
            )
    return results
