"""Plain async factories and the helpers every suite repeats.

Rows: a newsletter (with readers inserted in bulk), subscriptions, an issue with stories.
Looking: row counts, delivery statuses, an issue's status. Processes: a real
`python -m app.cli worker` child with its log in a file, copies per recipient in a sink,
and bounded waits that fail with a message naming what never happened.

Every factory commits, so the rows are visible to the app under test (each test starts
from empty tables).
"""

from __future__ import annotations

import email
import email.policy
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import (
    Delivery,
    Issue,
    Newsletter,
    OutboxMessage,
    ScheduleTick,
    Story,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tests.conftest import SECRET
from tests.smtp import Captured

POSTAL = "Broadsheet Ltd\n1 Fleet Street\nLondon EC4Y 1AA"

# The newsletter most suites send (and rendering.samples builds in memory).
NEWSLETTER: dict[str, Any] = {
    "slug": "weekly",
    "name": "The Weekly",
    "from_name": "The Weekly Desk",
    "from_email": "desk@news.example.com",
    "reply_to": "editor@news.example.com",
    "postal_address": POSTAL,
    "double_opt_in": True,
    "timezone": "UTC",
    "track_opens": False,
    "track_clicks": False,
    "template": "default",
}

# The newsletter of the subscriber suites: what their pages and confirmations show.
GAZETTE: dict[str, Any] = {
    "name": "The Weekly Gazette",
    "description": "Five stories worth your time, every Monday morning.",
    "from_name": "The Weekly Gazette",
    "from_email": "news@example.com",
    "reply_to": None,
    "postal_address": "1 Main Street, Springfield",
}

INTRO = "Welcome to **this week's** issue. Read [our guide](https://example.com/guide?a=1&b=2)."
BODY = (
    "Researchers published *new findings* on Tuesday, with [the full paper]"
    "(https://example.org/paper) and a summary.\n\n"
    "- the first point\n- the second point\n\n"
    "> A quote from someone involved.\n"
)

# Every character some part of the stack (Python's str.splitlines, email headers, SMTP)
# may take for the end of a line: none may reach a header or a stored one-line field.
LINE_BREAKS = [
    "\r",
    "\n",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
]

_numbers = itertools.count(1)


# -- rows ---------------------------------------------------------------------------


async def create_newsletter(
    session: AsyncSession, *, readers: int = 0, **overrides: Any
) -> Newsletter:
    """A newsletter (`overrides` are its columns) with `readers` active readers."""
    newsletter = Newsletter(**{**NEWSLETTER, **overrides})
    session.add(newsletter)
    await session.flush()
    if readers:
        await create_readers(session, newsletter, readers, prefix=f"{newsletter.slug}-reader")
    await session.commit()
    return newsletter


def newsletter_body(**overrides: Any) -> dict[str, Any]:
    """The JSON of a newsletter for POST /api/v1/newsletters."""
    body: dict[str, Any] = {
        "slug": "weekly",
        "name": "The Weekly",
        "description": "Five links worth your time, every Monday.",
        "from_name": "The Weekly",
        "from_email": "news@example.com",
        "postal_address": "1 Main Street, Springfield",
    }
    body.update(overrides)
    return body


async def create_gazette(session: AsyncSession, **overrides: Any) -> Newsletter:
    """The subscriber suites' newsletter (GAZETTE), double opt-in."""
    return await create_newsletter(session, **{**GAZETTE, **overrides})


async def create_scheduled_newsletter(
    session: AsyncSession,
    *,
    cron: str | None = "0 9 * * MON",
    checked_at: datetime | None = None,
    readers: int = 2,
    **overrides: Any,
) -> Newsletter:
    """A newsletter on a cron schedule (a slug of its own each call), with two readers."""
    n = next(_numbers)
    values: dict[str, Any] = {"slug": f"weekly-{n}", "name": f"Weekly {n}", "double_opt_in": False}
    values.update(overrides)
    return await create_newsletter(
        session, readers=readers, schedule_cron=cron, schedule_checked_at=checked_at, **values
    )


async def create_readers(
    session: AsyncSession,
    newsletter: Newsletter,
    count: int,
    *,
    status: str = "active",
    prefix: str = "reader",
) -> list[str]:
    """`count` subscribers of the newsletter, inserted in bulk; their addresses."""
    now = utcnow()
    emails = [f"{prefix}{i}@example.com" for i in range(count)]
    for start in range(0, count, 5000):
        chunk = emails[start : start + 5000]
        people = [
            {
                "email": e,
                "name": f"Reader {i}",
                "attributes": {},
                "created_at": now,
                "updated_at": now,
            }
            for i, e in enumerate(chunk, start)
        ]
        result = await session.execute(insert(Subscriber).returning(Subscriber.id), people)
        await session.execute(
            insert(Subscription),
            [
                {
                    "newsletter_id": newsletter.id,
                    "subscriber_id": sid,
                    "status": status,
                    "source": "api",
                    "requested_at": now,
                    "soft_bounces": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for (sid,) in result.all()
            ],
        )
    return emails


async def create_subscription(
    session: AsyncSession,
    newsletter: Newsletter,
    email: str,
    name: str = "",
    *,
    status: SubscriptionStatus | str = SubscriptionStatus.active,
    attributes: dict[str, Any] | None = None,
) -> Subscription:
    subscriber = Subscriber(email=email, name=name, attributes=attributes or {})
    session.add(subscriber)
    await session.flush()
    subscription = Subscription(
        newsletter_id=newsletter.id,
        subscriber_id=subscriber.id,
        status=str(status),
        source="api",
        consent_text="test",
        requested_at=utcnow(),
    )
    session.add(subscription)
    await session.commit()
    return subscription


def story_values(i: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "title": f"Story {i + 1}: something worth reading",
        "body": BODY,
        "url": f"https://example.org/stories/{i + 1}",
        "source": "The Example Times",
        "image_url": f"https://img.example.org/{i + 1}.jpg" if i % 2 == 0 else None,
        "image_alt": f"Picture for story {i + 1}" if i % 4 == 0 else None,
    }
    values.update(overrides)
    return values


async def create_issue(
    session: AsyncSession,
    newsletter: Newsletter,
    *,
    stories: int = 3,
    story_overrides: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Issue:
    """A draft issue numbered after the newsletter's last, with `stories` stories."""
    last = select(func.coalesce(func.max(Issue.number), 0)).where(
        Issue.newsletter_id == newsletter.id
    )
    values: dict[str, Any] = {
        "newsletter_id": newsletter.id,
        "number": (await session.execute(last)).scalar_one() + 1,
        "subject": "This week: findings, quotes & more",
        "preheader": "Five minutes of reading for your Monday",
        "intro": INTRO,
        "outro": "Thanks for reading. *Reply* to tell us what you think.",
        "status": "draft",
    }
    values.update(overrides)
    values["status"] = str(values["status"])
    issue = Issue(**values)
    session.add(issue)
    await session.flush()
    extras = story_overrides or [{}] * stories
    for i in range(stories):
        session.add(Story(issue_id=issue.id, position=i, **story_values(i, **extras[i])))
    await session.commit()
    return issue


async def seed(
    sessionmaker: async_sessionmaker[AsyncSession], readers: int, *, slug: str = "weekly"
) -> tuple[int, int, list[str]]:
    """A newsletter with `readers` active readers and a draft issue: (newsletter, issue, emails)."""
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session, slug=slug, double_opt_in=False)
        emails = await create_readers(session, newsletter, readers)
        issue = await create_issue(session, newsletter)
        return newsletter.id, issue.id, emails


# -- looking ------------------------------------------------------------------------


async def stories_of(session: AsyncSession, issue: Issue) -> list[Story]:
    result = await session.execute(
        select(Story).where(Story.issue_id == issue.id).order_by(Story.position)
    )
    return list(result.scalars())


async def count(session: AsyncSession, model: type[Any]) -> int:
    result = await session.execute(select(func.count()).select_from(model))
    return int(result.scalar_one())


async def delivery_statuses(
    sessionmaker: async_sessionmaker[AsyncSession], issue_id: int
) -> dict[str, int]:
    """How many of the issue's deliveries are in each status, read in a fresh session."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        )
        return {str(status): int(n) for status, n in rows.all()}


async def issue_status(session: AsyncSession, issue_id: int) -> str:
    return str(await session.scalar(select(Issue.status).where(Issue.id == issue_id)))


async def delivery_count(session: AsyncSession, issue_id: int) -> int:
    query = select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
    return int((await session.execute(query)).scalar_one())


async def schedule_ticks(
    session: AsyncSession, newsletter_id: int
) -> list[tuple[datetime, str, int | None]]:
    """The newsletter's settled cron ticks: (tick, outcome, issue id), oldest first."""
    result = await session.execute(
        select(ScheduleTick.tick_at, ScheduleTick.outcome, ScheduleTick.issue_id)
        .where(ScheduleTick.newsletter_id == newsletter_id)
        .order_by(ScheduleTick.tick_at)
    )
    return [(tick, outcome, issue_id) for tick, outcome, issue_id in result.all()]


async def outbox_rows(session: AsyncSession) -> list[OutboxMessage]:
    result = await session.execute(
        select(OutboxMessage).order_by(OutboxMessage.id).execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def subscription_of(
    session: AsyncSession, email: str, newsletter: Newsletter | None = None
) -> Subscription | None:
    stmt = (
        select(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == email)
        .execution_options(populate_existing=True)
    )
    if newsletter is not None:
        stmt = stmt.where(Subscription.newsletter_id == newsletter.id)
    return (await session.execute(stmt)).scalar_one_or_none()


def confirm_link(message_bytes: bytes) -> str:
    """The confirm URL from the text part of a confirmation email."""
    msg = email.message_from_bytes(message_bytes, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    match = re.search(r"https?://\S+/confirm/\S+", body.get_content())
    assert match, "no confirm link in the text part"
    return match.group(0)


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)\s*$", re.MULTILINE | re.IGNORECASE)


def copies(messages: Iterable[Captured]) -> tuple[Counter[str], dict[str, set[bytes]]]:
    """Copies per recipient in a sink, and the Message-IDs each recipient received."""
    per_rcpt: Counter[str] = Counter()
    ids: dict[str, set[bytes]] = defaultdict(set)
    for message in messages:
        match = _MESSAGE_ID.search(message.data.split(b"\r\n\r\n", 1)[0])
        for rcpt in message.rcpt_tos:
            per_rcpt[rcpt] += 1
            ids[rcpt].add(match.group(1) if match else b"")
    return per_rcpt, ids


# -- waiting and processes ----------------------------------------------------------


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_healthy(
    url: str,
    timeout: float,
    *,
    processes: Iterable[subprocess.Popen[Any]] = (),
    logs: Callable[[], str] = str,
) -> None:
    """Poll `url` until it answers 200; fail early when one of `processes` exits, and
    after `timeout` seconds, the failure naming the url and ending with `logs()`."""
    watched = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        exited = [p.args for p in watched if p.poll() is not None]
        if exited:
            raise AssertionError(f"exited before {url} answered: {exited}\n{logs()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no 200 from {url} after {timeout} s\n{logs()}")
        time.sleep(0.1)


def worker_env(database_url: str, smtp_url: str, **settings: object) -> dict[str, str]:
    """The environment of a child `broadsheet` command: no BROADSHEET_ setting of ours
    leaks in; `settings` are named like Settings fields (`lease_seconds=3`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    env.update(
        {
            "BROADSHEET_DATABASE_URL": database_url,
            "BROADSHEET_SMTP_URL": smtp_url,
            "BROADSHEET_SECRET_KEY": SECRET,
            "BROADSHEET_BASE_URL": "http://testserver",
            "BROADSHEET_LOG_LEVEL": "INFO",
            "BROADSHEET_RETRY_BACKOFF_SECONDS": "0.2",
        }
    )
    for key, value in settings.items():
        env[f"BROADSHEET_{key.upper()}"] = str(value)
    return env


class WorkerProcess:
    """`python -m app.cli <args>` (a worker by default) as a child, its output in a file
    in a folder of its own (no .env there)."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._file: IO[bytes] = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *(args or ("worker", "--no-scheduler"))],
            cwd=log.parent,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def wait_started(self, timeout: float) -> None:
        """Poll the log until the worker says it started; fail early if it exits."""
        wait_for(
            lambda: self._running() and "worker started" in self.output(),
            timeout,
            "the worker to start",
        )

    def _running(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
        return True

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit code (it drains first)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._file.close()

    def output(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text(errors="replace")
