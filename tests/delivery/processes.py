"""Real `broadsheet worker` processes for crash and concurrency tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import IO, Any

from tests.conftest import ROOT, SECRET
from tests.smtp import Captured

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)\s*$", re.MULTILINE | re.IGNORECASE)


def worker_env(database_url: str, smtp_url: str, **settings: Any) -> dict[str, str]:
    env = {
        **os.environ,
        "BROADSHEET_DATABASE_URL": database_url,
        "BROADSHEET_SMTP_URL": smtp_url,
        "BROADSHEET_SECRET_KEY": SECRET,
        "BROADSHEET_BASE_URL": "http://testserver",
        "BROADSHEET_LOG_LEVEL": "INFO",
        "BROADSHEET_RETRY_BACKOFF_SECONDS": "0.2",
    }
    for key, value in settings.items():
        env[f"BROADSHEET_{key.upper()}"] = str(value)
    return env


class WorkerProcess:
    """`python -m app.cli worker --no-scheduler` with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--no-scheduler"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_started(self, timeout: float) -> None:
        """Poll the log until the worker says it started; fail early if it exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while "worker started" not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not started after {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def stop(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def copies(messages: list[Captured]) -> tuple[Counter[str], dict[str, set[bytes]]]:
    """Copies per recipient and the Message-IDs each recipient received."""
    count: Counter[str] = Counter()
    ids: dict[str, set[bytes]] = defaultdict(set)
    for message in messages:
        head = message.data.split(b"\r\n\r\n", 1)[0]
        match = _MESSAGE_ID.search(head)
        for rcpt in message.rcpt_tos:
            count[rcpt] += 1
            ids[rcpt].add(match.group(1) if match else b"")
    return count, ids


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


KILL = signal.SIGKILL
TERM = signal.SIGTERM
