"""Database faults: PostgreSQL restarted mid-send (worker and API reconnect, the send
completes); SQLite held locked by another connection (clear errors, nothing lost, recovery);
a full disk where one can be made (a 2 MB tmpfs)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.reliability.conftest import SpawnWorker
from tests.reliability.harness import (
    ApiServer,
    SinkServer,
    fault_seed,
    outcome_of,
    report,
    seed_send,
    wait_for_count,
    wait_settled,
    worker_env,
)

SEED = fault_seed()
PG_CLUSTER = ["15", "main"]


def pg_online() -> bool:
    result = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    )
    return any(
        line.split()[:2] == PG_CLUSTER and "online" in line for line in result.stdout.splitlines()
    )


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


async def wait_pg_accepting(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, check=False
        )
        if done.returncode == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back")


@pytest.mark.faults
async def test_postgresql_restarted_mid_send_the_worker_and_api_reconnect_and_finish(
    db_kind: str,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
    tmp_path: Path,
) -> None:
    if db_kind != "postgresql":
        pytest.skip("restarting the database server is a PostgreSQL test")
    rng = random.Random(SEED)
    report(f"\n[pg restart] seed={SEED}")
    readers = 5000
    issue_id, emails = await seed_send(
        sessionmaker, client, admin_headers, readers=readers, slug="pgrestart"
    )
    worker = spawn_worker()
    api = ApiServer(worker_env(database_url, sink_server.url), tmp_path / "api.log")
    try:
        async with httpx.AsyncClient() as http:
            await api.wait_ready(http)
            restarts = 0
            for point in sorted(rng.sample(range(200, readers - 500), 2)):
                await wait_for_count(sink_server.sink, point, timeout=180, worker=worker)
                report(f"  restarting PostgreSQL after {sink_server.sink.count()} messages")
                try:
                    pg_ctl("restart")
                finally:
                    if not pg_online():
                        pg_ctl("start")
                    await wait_pg_accepting()
                restarts += 1
                # The API answers again on its own (its pool reconnects).
                await api.wait_ready(http, timeout=60)
                stats = None
                for _ in range(50):
                    stats = await http.get(
                        f"{api.url}/api/v1/issues/{issue_id}/stats", headers=admin_headers
                    )
                    if stats.status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                assert stats is not None
                assert stats.status_code == 200, stats.text
            statuses = await wait_settled(sessionmaker, issue_id, timeout=300, worker=worker)
        assert worker.terminate() == 0
    finally:
        api.close()
        if not pg_online():
            pg_ctl("start")
    result = outcome_of(emails, sink_server.sink.snapshot(), statuses)
    report(
        f"  [pg restart] outcome after {restarts} restarts: {result}",
        kind="pg_restart",
        seed=SEED,
        readers=readers,
        restarts=restarts,
        lost=result.lost,
        repeats=result.repeats,
    )
    assert result.statuses == {"sent": readers}
    assert result.missing == 0
    assert result.mixed_message_ids == 0
    # A restart is not a worker crash, but outcomes being written when the connection
    # died may be retried: allow what a crash may repeat, and report it.
    assert result.repeats <= restarts * (8 + 100), result


def hammer(path: str, seconds: float) -> int:
    """Commit tiny writes to the SQLite file from another connection for `seconds`."""
    writer = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    done = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                writer.execute("BEGIN IMMEDIATE")
                writer.execute(
                    "INSERT INTO rate_counter (key, window_start, count) VALUES ('hammer', 0, 1)"
                    " ON CONFLICT (key) DO UPDATE SET count = count + 1"
                )
                writer.execute("COMMIT")
                done += 1
            except sqlite3.OperationalError:
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
    finally:
        writer.close()
    return done


def sqlite_path(database_url: str) -> str:
    return database_url.split(":///", 1)[1]


async def lock_sqlite_through_a_send(
    *,
    lock_seconds: float,
    lease_seconds: float,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    readers = 300
    issue_id, emails = await seed_send(
        sessionmaker, client, admin_headers, readers=readers, slug="locked"
    )
    worker = spawn_worker(BROADSHEET_LEASE_SECONDS=str(lease_seconds))
    await wait_for_count(sink_server.sink, 50, timeout=60, worker=worker)
    # Another connection takes the write lock and holds it past a few flushes.
    blocker = sqlite3.connect(sqlite_path(database_url), timeout=10, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        await asyncio.sleep(lock_seconds)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    statuses = await wait_settled(sessionmaker, issue_id, timeout=120, worker=worker)
    assert worker.terminate() == 0
    result = outcome_of(emails, sink_server.sink.snapshot(), statuses)
    report(
        f"\n[sqlite lock {lock_seconds}s, lease {lease_seconds}s] outcome: {result}",
        kind="sqlite_lock",
        lock_seconds=lock_seconds,
        lease_seconds=lease_seconds,
        readers=readers,
        lost=result.lost,
        repeats=result.repeats,
    )
    assert result.statuses == {"sent": readers}
    assert result.missing == 0
    assert result.repeats == 0, result


@pytest.mark.faults
async def test_sqlite_held_locked_for_seconds_the_send_recovers_with_nothing_lost(
    db_kind: str,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    if db_kind != "sqlite":
        pytest.skip("an exclusive file lock is an SQLite test")
    await lock_sqlite_through_a_send(
        lock_seconds=4,
        lease_seconds=15,
        database_url=database_url,
        sessionmaker=sessionmaker,
        client=client,
        admin_headers=admin_headers,
        sink_server=sink_server,
        spawn_worker=spawn_worker,
    )


@pytest.mark.faults
async def test_sqlite_locked_longer_than_the_lease_still_repeats_nothing(
    db_kind: str,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    if db_kind != "sqlite":
        pytest.skip("an exclusive file lock is an SQLite test")
    await lock_sqlite_through_a_send(
        lock_seconds=5,
        lease_seconds=3,
        database_url=database_url,
        sessionmaker=sessionmaker,
        client=client,
        admin_headers=admin_headers,
        sink_server=sink_server,
        spawn_worker=spawn_worker,
    )


async def test_an_api_write_while_sqlite_is_locked_gets_a_clear_answer_not_a_500(
    db_kind: str,
    database_url: str,
    client: AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    if db_kind != "sqlite":
        pytest.skip("an exclusive file lock is an SQLite test")
    await client.get("/api/v1/newsletters", headers=admin_headers)  # key touched already
    blocker = sqlite3.connect(sqlite_path(database_url), timeout=10, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        during = await client.post(
            "/api/v1/newsletters",
            json={
                "slug": "during-lock",
                "name": "x",
                "from_name": "x",
                "from_email": "x@example.com",
            },
            headers=admin_headers,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert during.status_code in (201, 503), during.text
    after = await client.post(
        "/api/v1/newsletters",
        json={"slug": "after-lock", "name": "x", "from_name": "x", "from_email": "x@example.com"},
        headers=admin_headers,
    )
    assert after.status_code == 201


@pytest.mark.faults
async def test_confirmations_are_sent_once_through_an_sqlite_lock(
    db_kind: str,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    if db_kind != "sqlite":
        pytest.skip("an exclusive file lock is an SQLite test")
    from sqlalchemy import func, select

    from app.kit.db import unit_of_work
    from app.models import OutboxMessage

    count = 400
    async with unit_of_work(sessionmaker) as session:
        for i in range(count):
            session.add(
                OutboxMessage(
                    kind="confirmation",
                    mail_from="news@example.org",
                    rcpt_to=f"confirm{i}@example.com",
                    message=b"Message-ID: <c%d@example.org>\r\nSubject: x\r\n\r\nx\r\n" % i,
                    message_id=f"<c{i}@example.org>",
                )
            )
    worker = spawn_worker()
    sink = sink_server.sink
    await wait_for_count(sink, 20, timeout=60, worker=worker)
    # Another writer commits small transactions as fast as it can for a few seconds (as
    # the API does under load): the worker's read transactions go stale and their writes
    # meet SQLITE_BUSY at once, whatever the busy timeout.
    await asyncio.to_thread(hammer, sqlite_path(database_url), 6.0)
    deadline = time.monotonic() + 120
    left = count
    while time.monotonic() < deadline and left:
        async with sessionmaker() as session:
            left = (
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status != "sent")
                )
                or 0
            )
        await asyncio.sleep(0.3)
    assert worker.terminate() == 0
    per_rcpt: dict[str, int] = {}
    for rcpt, _ in sink.snapshot():
        per_rcpt[rcpt] = per_rcpt.get(rcpt, 0) + 1
    twice = sum(n - 1 for n in per_rcpt.values())
    report(
        f"[outbox lock] {count} confirmations, {twice} sent twice, {left} unsent",
        kind="outbox_lock",
        messages=count,
        repeats=twice,
        lost=left,
    )
    assert left == 0
    assert len(per_rcpt) == count
    assert twice == 0
