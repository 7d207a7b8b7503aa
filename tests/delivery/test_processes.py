"""Real worker processes: SIGTERM and SIGKILL mid-send, several workers, the shared rate cap.

Each test seeds readers, starts the send through the service (as `broadsheet send`
does), runs `python -m app.cli worker` processes against the test database and a real
SMTP server, and counts the copies each reader received.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery.service import start_send
from app.issues import service as issues
from app.kit.db import unit_of_work
from app.settings import Settings
from tests.delivery.faulty_smtp import DROP, FaultyServer
from tests.factories import (
    WorkerProcess,
    copies,
    delivery_statuses,
    issue_status,
    seed,
    wait_for,
    worker_env,
)

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
def spawn(
    database_url: str, faulty: FaultyServer, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(**settings: object) -> WorkerProcess:
        env = worker_env(database_url, faulty.url, **settings)
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


async def start_issue(
    sessionmaker: Maker, readers: int, settings: Settings
) -> tuple[int, list[str]]:
    _, issue_id, emails = await seed(sessionmaker, readers)
    async with unit_of_work(sessionmaker) as session:
        issue = await issues.get(session, issue_id)
        assert await start_send(session, issue, settings=settings) == readers
    return issue_id, emails


async def wait_sent(sessionmaker: Maker, issue_id: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with sessionmaker() as session:
            if await issue_status(session, issue_id) == "sent":
                return
        assert time.monotonic() < deadline, f"issue {issue_id} not sent after {timeout} s"
        await asyncio.sleep(0.2)


async def assert_everyone_got_it_within_the_bound(
    sessionmaker: Maker, issue_id: int, emails: list[str], faulty: FaultyServer, pool: int
) -> None:
    """After a SIGKILL: all sent, every reader reached, repeats at most the crash bound
    (the pool in flight plus one unflushed batch), each repeat with the same Message-ID."""
    assert await delivery_statuses(sessionmaker, issue_id) == {"sent": len(emails)}
    per_reader, ids = copies(faulty.sink.messages)
    assert set(per_reader) == set(emails)
    assert sum(n - 1 for n in per_reader.values()) <= pool + 100
    assert all(len(found) == 1 for found in ids.values())


async def test_sigterm_mid_send_loses_nothing_and_repeats_nothing(
    sessionmaker: Maker,
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    spawn: Callable[..., WorkerProcess],
) -> None:
    readers = 400
    issue_id, emails = await start_issue(sessionmaker, readers, faulty_settings())
    faulty.sink.accept_delay = 0.004
    worker = spawn(smtp_pool_size=4, batch_size=100)
    wait_for(lambda: faulty.sink.count() >= 100, 60, "the send to get going")
    assert worker.terminate(timeout=30) == 0, worker.output()
    assert "worker stopped" in worker.output()  # it drained and said so, not cut off
    delivered = faulty.sink.count()
    assert 0 < delivered < readers  # stopped mid-send
    # Every accepted message recorded as sent; the rest back in the queue, none left
    # leased to the stopped worker and none lost.
    assert await delivery_statuses(sessionmaker, issue_id) == {
        "sent": delivered,
        "queued": readers - delivered,
    }
    spawn(smtp_pool_size=4)
    await wait_sent(sessionmaker, issue_id)
    per_reader, _ = copies(faulty.sink.messages)
    assert per_reader == dict.fromkeys(emails, 1)


async def test_sigkill_mid_send_repeats_at_most_the_bound_with_the_same_message_id(
    sessionmaker: Maker,
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    spawn: Callable[..., WorkerProcess],
) -> None:
    readers, pool = 400, 4
    issue_id, emails = await start_issue(sessionmaker, readers, faulty_settings())
    faulty.sink.accept_delay = 0.004
    worker = spawn(smtp_pool_size=pool, lease_seconds=2)
    wait_for(lambda: faulty.sink.count() >= 130, 60, "the send to get going")
    worker.kill()
    spawn(smtp_pool_size=pool, lease_seconds=2)
    await wait_sent(sessionmaker, issue_id)
    await assert_everyone_got_it_within_the_bound(sessionmaker, issue_id, emails, faulty, pool)


async def test_workers_on_postgresql_share_one_send_without_overlap(
    db_kind: str,
    sessionmaker: Maker,
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    spawn: Callable[..., WorkerProcess],
) -> None:
    if db_kind != "postgresql":
        pytest.skip("several workers share a send on PostgreSQL only (SQLite: one worker)")
    readers = 900
    workers = [spawn(smtp_pool_size=4, batch_size=50) for _ in range(3)]
    issue_id, emails = await start_issue(sessionmaker, readers, faulty_settings())
    await wait_sent(sessionmaker, issue_id)
    per_reader, _ = copies(faulty.sink.messages)
    assert per_reader == dict.fromkeys(emails, 1)
    for worker in workers:  # all at once, so they drain side by side
        worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.process.wait(timeout=30) == 0, worker.output()


async def test_send_rate_holds_for_all_workers_together(
    db_kind: str,
    sessionmaker: Maker,
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    spawn: Callable[..., WorkerProcess],
) -> None:
    readers, rate = 80, 20
    count = 2 if db_kind == "postgresql" else 1
    workers = [spawn(smtp_pool_size=4, send_rate=rate) for _ in range(count)]
    for worker in workers:  # every worker up before the send, so they all share it
        worker.wait_started(timeout=60)
    issue_id, emails = await start_issue(sessionmaker, readers, faulty_settings())
    await wait_sent(sessionmaker, issue_id)
    times = sorted(faulty.sink.times)
    assert len(times) == readers
    # A bucket holds a fifth of a second of sends, so after the first burst the rest
    # cannot arrive faster than the cap: a lower bound only, with generous slack.
    burst = max(1, int(rate * 0.2)) * count
    assert times[-1] - times[0] >= (readers - burst) / rate * 0.8


@pytest.mark.faults
async def test_sigkill_with_a_faulty_smtp_server_still_delivers_everyone_within_the_bound(
    sessionmaker: Maker,
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    spawn: Callable[..., WorkerProcess],
) -> None:
    readers, pool = 3000, 8
    issue_id, emails = await start_issue(sessionmaker, readers, faulty_settings())
    faulty.sink.add("rcpt", "451 4.3.0 greylisted", to=emails[::10], attempts=[1])
    faulty.sink.add("data", DROP, to=emails[5::50], attempts=[1])
    faulty.sink.add("rcpt", "", to=emails[7::100], delay=0.5)  # slow replies
    worker = spawn(smtp_pool_size=pool, lease_seconds=3, max_attempts=5)
    wait_for(lambda: faulty.sink.count() >= readers // 3, 120, "a third of the send")
    worker.kill()
    spawn(smtp_pool_size=pool, lease_seconds=3, max_attempts=5)
    await wait_sent(sessionmaker, issue_id, timeout=300)
    await assert_everyone_got_it_within_the_bound(sessionmaker, issue_id, emails, faulty, pool)
