"""Fixtures of the fault suite: a counting SMTP sink and worker processes cleaned up after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.factories import WorkerProcess
from tests.reliability.harness import SinkServer, worker_env


@pytest.fixture
def sink_server() -> Iterator[SinkServer]:
    server = SinkServer()
    server.start()
    yield server
    server.stop()


SpawnWorker = Callable[..., WorkerProcess]


@pytest.fixture
def spawn_worker(
    database_url: str, sink_server: SinkServer, tmp_path: Path
) -> Iterator[SpawnWorker]:
    """Start `broadsheet worker --no-scheduler` processes; any still alive are killed after."""
    workers: list[WorkerProcess] = []

    def spawn(*args: str, **env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = WorkerProcess(
            worker_env(database_url, sink_server.url, **env),
            log,
            *(args or ("worker", "--no-scheduler")),
        )
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        worker.close()
