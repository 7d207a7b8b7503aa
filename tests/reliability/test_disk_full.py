"""A full disk under the SQLite database (a small tmpfs, mounted as root): the API answers
writes with a clear error and no 5xx traceback, the worker loses nothing, and both recover
once space is freed. Skipped, saying why, where a tmpfs cannot be mounted."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from app.kit.db import create_engine, create_sessionmaker
from app.main import create_app
from tests.conftest import make_settings, migrate
from tests.factories import WorkerProcess
from tests.reliability.harness import (
    SinkServer,
    outcome_of,
    report,
    seed_send,
    wait_for_count,
    wait_settled,
    worker_env,
)

ADMIN = "disk-full-admin-key-0123456789"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the disk is full; returns it (delete it to free space)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                out.write(block)

        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 512)

    return filler


@pytest.mark.faults
async def test_a_full_disk_gives_clear_errors_and_nothing_is_lost(
    db_kind: str, tiny_disk: Path, sink_server: SinkServer
) -> None:
    if db_kind != "sqlite":
        pytest.skip("the full disk is simulated under the SQLite database file")
    url = f"sqlite+aiosqlite:///{tiny_disk}/broadsheet.db"
    migrate(url)
    settings = make_settings(url, sink_server.port, admin_api_key=ADMIN)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    app = create_app(settings, engine=engine)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    log_dir = tiny_disk.parent
    worker: WorkerProcess | None = None
    try:
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            issue_id, emails = await seed_send(
                sessionmaker, client, headers, readers=200, slug="diskfull"
            )
            worker = WorkerProcess(
                worker_env(url, sink_server.url, BROADSHEET_LEASE_SECONDS="30"),
                log_dir / "worker.log",
                "worker",
                "--no-scheduler",
            )
            await wait_for_count(sink_server.sink, 20, timeout=60, worker=worker)
            filler = fill(tiny_disk)
            during = await client.post(
                "/api/v1/newsletters",
                json={
                    "slug": "during",
                    "name": "x",
                    "from_name": "x",
                    "from_email": "x@example.com",
                },
                headers=headers,
            )
            await asyncio.sleep(3)
            filler.unlink()
            statuses = await wait_settled(sessionmaker, issue_id, timeout=120, worker=worker)
            after = await client.post(
                "/api/v1/newsletters",
                json={
                    "slug": "after",
                    "name": "x",
                    "from_name": "x",
                    "from_email": "x@example.com",
                },
                headers=headers,
            )
        assert worker.terminate() == 0
    finally:
        if worker is not None:
            worker.close()
        await engine.dispose()
    result = outcome_of(emails, sink_server.sink.snapshot(), statuses)
    report(
        f"[disk full] API write while full -> {during.status_code}; outcome {result}",
        kind="disk_full",
        during_status=during.status_code,
        lost=result.lost,
        repeats=result.repeats,
        readers=200,
    )
    check = sqlite3.connect(f"{tiny_disk}/broadsheet.db")
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
    assert result.statuses == {"sent": 200}
    assert result.missing == 0
    assert result.repeats == 0
    assert after.status_code == 201, after.text  # the API recovered by itself
    assert during.status_code != 201 or "during" in during.text


async def test_an_api_write_on_a_full_disk_gets_a_clear_answer_not_a_500(
    db_kind: str, tiny_disk: Path, sink_server: SinkServer
) -> None:
    if db_kind != "sqlite":
        pytest.skip("the full disk is simulated under the SQLite database file")
    url = f"sqlite+aiosqlite:///{tiny_disk}/broadsheet.db"
    migrate(url)
    engine = create_engine(url)
    app = create_app(make_settings(url, sink_server.port, admin_api_key=ADMIN), engine=engine)
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            filler = fill(tiny_disk)
            during = await client.post(
                "/api/v1/newsletters",
                json={
                    "slug": "during",
                    "name": "x",
                    "from_name": "x",
                    "from_email": "x@example.com",
                },
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            filler.unlink()
    finally:
        await engine.dispose()
    assert during.status_code in (503, 507), (during.status_code, during.text[:300])
    assert os.strerror(errno.ENOSPC) not in during.text
