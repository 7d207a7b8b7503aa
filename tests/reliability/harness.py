"""Shared parts of the fault and load suites: a counting SMTP sink that can misbehave, real
worker processes, seeding a send, and waiting for it to settle."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from tests.factories import (
    WorkerProcess,
    create_issue,
    create_newsletter,
    create_readers,
    delivery_statuses,
)
from tests.factories import worker_env as child_env
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
TERMINAL = ("sent", "failed", "bounced", "skipped", "cancelled")


def fault_seed() -> int:
    """BROADSHEET_FAULT_SEED replays a run; otherwise a fresh seed, printed by the tests."""
    value = os.environ.get("BROADSHEET_FAULT_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**31)


@dataclass
class CountingSink:
    """An aiosmtpd handler keeping only (recipient, Message-ID) of each accepted message.

    `mode` makes it misbehave: "up" accepts, "421" refuses every transaction with 421,
    "slow" waits `slow_seconds` before accepting.
    """

    received: list[tuple[str, str]] = field(default_factory=list)
    mode: str = "up"
    slow_seconds: float = 0.5
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mode == "421":
            with self.lock:
                self.refused += 1
            return "421 4.3.2 service not available, try later"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        data: bytes = envelope.original_content or envelope.content
        match = _MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
        mid = match.group(1).decode() if match else ""
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append((rcpt, mid))
        return "250 OK queued"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def snapshot(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.received)


class SinkServer:
    """The sink on a fixed port that can be stopped (down) and started again (up)."""

    def __init__(self, sink: CountingSink | None = None) -> None:
        self.sink = sink or CountingSink()
        self.port = free_port()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.controller is None:
            self.controller = Controller(
                self.sink,
                hostname="127.0.0.1",
                port=self.port,
                enable_SMTPUTF8=True,
                decode_data=False,
                data_size_limit=50_000_000,
            )
            self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@dataclass
class Outcome:
    """What one send left behind, in figures."""

    recipients: int
    statuses: dict[str, int]
    messages: int
    distinct: int
    repeats: int
    mixed_message_ids: int
    missing: int

    @property
    def lost(self) -> int:
        return self.recipients - self.statuses.get("sent", 0)


def outcome_of(
    emails: list[str], received: list[tuple[str, str]], statuses: dict[str, int]
) -> Outcome:
    per_rcpt: dict[str, set[str]] = {}
    for rcpt, mid in received:
        per_rcpt.setdefault(rcpt, set()).add(mid)
    counts = Counter(rcpt for rcpt, _ in received)
    return Outcome(
        recipients=len(emails),
        statuses=statuses,
        messages=len(received),
        distinct=len(counts),
        repeats=sum(n - 1 for n in counts.values()),
        mixed_message_ids=sum(1 for mids in per_rcpt.values() if len(mids) > 1),
        missing=len(set(emails) - set(counts)),
    )


# The fault suites' workers: short leases, many attempts, a larger pool, a quick timeout.
RELIABILITY = {
    "lease_seconds": 3,
    "max_attempts": 50,
    "smtp_pool_size": 8,
    "smtp_timeout_seconds": 5,
}


def worker_env(database_url: str, smtp_url: str, **overrides: str) -> dict[str, str]:
    """The shared child environment with the RELIABILITY settings; `overrides` are
    environment variables (`BROADSHEET_LEASE_SECONDS="30"`)."""
    return {**child_env(database_url, smtp_url, **RELIABILITY), **overrides}


async def seed_send(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    headers: dict[str, str],
    *,
    readers: int,
    slug: str = "weekly",
) -> tuple[int, list[str]]:
    """A newsletter with `readers` active readers and an issue, sent through the API."""
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session, slug=slug, double_opt_in=False)
        emails = await create_readers(session, newsletter, readers, prefix=f"{slug}-")
        issue = await create_issue(session, newsletter)
        issue_id = issue.id
    response = await client.post(f"/api/v1/issues/{issue_id}/send", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["recipients"] == readers
    return issue_id, emails


async def wait_settled(
    sessionmaker: async_sessionmaker[AsyncSession],
    issue_id: int,
    *,
    timeout: float,
    worker: WorkerProcess | None = None,
) -> dict[str, int]:
    """Poll until every delivery of the issue is in a final state (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            statuses = await delivery_statuses(sessionmaker, issue_id)
        except Exception:  # noqa: BLE001 - the database may be restarting under us
            await asyncio.sleep(0.5)
            continue
        if statuses and all(s in TERMINAL for s in statuses):
            return statuses
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.output()[-3000:]}")
        await asyncio.sleep(0.2)
    tail = worker.output()[-3000:] if worker else ""
    raise AssertionError(f"send did not settle in {timeout}s: {statuses}\n{tail}")


async def wait_for_count(
    sink: CountingSink, count: int, *, timeout: float, worker: WorkerProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sink.count() >= count:
            return
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.output()[-3000:]}")
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} messages, got {sink.count()}")


class ApiServer:
    """`python -m app.cli serve` on a free loopback port, as a child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker = WorkerProcess(env, log, "serve", "--port", str(self.port))

    async def wait_ready(self, client: AsyncClient, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker.process.poll() is not None:
                raise AssertionError(f"API exited:\n{self.worker.output()[-3000:]}")
            try:
                response = await client.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"API not ready in {timeout}s:\n{self.worker.output()[-3000:]}")

    def close(self) -> None:
        self.worker.terminate(timeout=30)
        self.worker.close()


FIGURES_FILE = Path(os.environ.get("BROADSHEET_FIGURES_FILE", "/tmp/broadsheet-figures.jsonl"))


def report(line: str, **figures: Any) -> None:
    """Say what happened (stderr, seen with `pytest -s`) and keep the figures for the README."""
    sys.stderr.write(line + "\n")
    if figures:
        import json

        with FIGURES_FILE.open("a") as out:
            out.write(
                json.dumps(
                    {"event": line.strip().split("]")[0].lstrip("[\n "), **figures}, default=str
                )
                + "\n"
            )
