"""Done when: with an every-minute schedule, an issue marked ready goes out once at the
next minute while a worker runs and several run-due processes race."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import Subscriber, Subscription
from tests.factories import create_issue, create_scheduled_newsletter, issue_status, schedule_ticks
from tests.scheduling.processes import command_env, finish, run_due_at_once, start
from tests.smtp import MailSink

RACERS = 3
# A minute to the next tick at most, then the send itself; bounded either way.
DEADLINE_SECONDS = 100


@pytest.mark.slow
async def test_an_issue_marked_ready_goes_out_once_at_the_next_minute(
    session: AsyncSession,
    client: AsyncClient,
    editor_headers: dict[str, str],
    database_url: str,
    smtp_server: tuple[MailSink, int],
    mailbox: MailSink,
    tmp_path: Path,
) -> None:
    subscribers = 5
    now = utcnow()
    next_tick = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    newsletter = await create_scheduled_newsletter(
        session,
        cron="* * * * *",
        timezone="Europe/Berlin",
        checked_at=now,
        readers=subscribers,
    )
    issue = await create_issue(session, newsletter, stories=2)
    await session.commit()
    response = await client.post(f"/api/v1/issues/{issue.id}/ready", headers=editor_headers)
    assert response.status_code == 200, response.text

    env = command_env(database_url, smtp_server[1])
    worker = await start(["worker"], env, tmp_path)
    racer_outputs: list[str] = []
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        rounds_after_done = 0
        # Keep racing run-due processes against the worker's own scheduler until every
        # reader has the issue, then a few rounds more to show nothing goes twice.
        while time.monotonic() < deadline and rounds_after_done < 3:
            finished = await run_due_at_once(RACERS, env, tmp_path)
            assert [f.returncode for f in finished] == [0] * RACERS, [f.stderr for f in finished]
            racer_outputs += [f.stdout for f in finished]
            if len(mailbox.messages) >= subscribers:
                rounds_after_done += 1
    finally:
        worker.send_signal(signal.SIGTERM)
        stopped = await finish(worker, timeout=40)
    assert stopped.returncode == 0, stopped.stderr

    recipients = sorted(rcpt for message in mailbox.messages for rcpt in message.rcpt_tos)
    assert recipients == await subscriber_emails(session, newsletter.id)
    assert all(m.message["Subject"] == issue.subject for m in mailbox.messages)
    sent = [row for row in await schedule_ticks(session, newsletter.id) if row[1] == "sent"]
    assert sent == [(next_tick, "sent", issue.id)]
    assert await issue_status(session, issue.id) in ("sending", "sent")
    # The racing processes did the sending or found it done, never a second time.
    assert sum(out.count(": sent") for out in racer_outputs) <= 1


async def subscriber_emails(session: AsyncSession, newsletter_id: int) -> list[str]:
    result = await session.execute(
        select(Subscriber.email)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.newsletter_id == newsletter_id)
        .order_by(Subscriber.email)
    )
    return list(result.scalars())
