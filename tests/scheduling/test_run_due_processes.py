"""`broadsheet run-due` as a crontab runs it: real processes racing for one tick."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import IssueStatus
from tests.factories import (
    create_issue,
    create_scheduled_newsletter,
    delivery_count,
    issue_status,
    schedule_ticks,
)
from tests.scheduling.processes import command_env, run_due_at_once
from tests.smtp import MailSink


async def test_four_run_due_processes_started_at_once_send_the_ready_issue_once(
    session: AsyncSession,
    database_url: str,
    smtp_server: tuple[MailSink, int],
    tmp_path: Path,
) -> None:
    # Every minute, last settled half a minute before the latest real tick: that tick
    # is due now, with no fake clock in the child processes.
    now = utcnow()
    latest_tick = now.replace(second=0, microsecond=0)
    newsletter = await create_scheduled_newsletter(
        session, cron="* * * * *", checked_at=latest_tick - timedelta(seconds=30), readers=4
    )
    issue = await create_issue(
        session, newsletter, status=IssueStatus.ready, ready_at=now - timedelta(hours=1)
    )
    await session.commit()

    finished = await run_due_at_once(4, command_env(database_url, smtp_server[1]), tmp_path)

    assert [f.returncode for f in finished] == [0] * 4, [f.stderr for f in finished]
    lines = [line for f in finished for line in f.stdout.splitlines()]
    sent_lines = [line for line in lines if ": sent" in line]
    assert len(sent_lines) == 1, lines
    assert newsletter.slug in sent_lines[0]
    assert await issue_status(session, issue.id) == "sending"
    assert await delivery_count(session, issue.id) == 4
    rows = await schedule_ticks(session, newsletter.id)
    # One sent tick; if a minute boundary passed while the processes started, the newer
    # tick is settled too, as skipped or missed, but never as a second send.
    assert [row[2] for row in rows if row[1] == "sent"] == [issue.id]


async def test_run_due_prints_nothing_when_nothing_is_due(
    session: AsyncSession,
    database_url: str,
    smtp_server: tuple[MailSink, int],
    tmp_path: Path,
) -> None:
    await create_scheduled_newsletter(session, cron="0 9 * * MON", checked_at=utcnow())
    await session.commit()

    [finished] = await run_due_at_once(1, command_env(database_url, smtp_server[1]), tmp_path)

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == ""
