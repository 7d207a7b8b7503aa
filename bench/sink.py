"""Postfix's `smtp-sink` on loopback, with its message counter read back in a thread.

`smtp-sink -c` writes `sess=S quit=Q mesg=M\\r` to its standard output whenever a message
is accepted and flushes at once, so reading that pipe tells when the sink accepted the
first and the last message of a run, without a second server and without asking the
database. The reader sleeps a little between reads so that, under load, it wakes up a few
hundred times a second rather than once per message: timestamps are good to about 2 ms.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from bench.procs import Processes, free_port, wait_for_port

_COUNTER = re.compile(rb"mesg=(\d+)")
_READ_PAUSE = 0.002


def smtp_sink_path() -> str:
    path = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.access(path, os.X_OK):
        raise RuntimeError("smtp-sink not found: install Debian's postfix package (bench/run does)")
    return path


@dataclass(frozen=True, slots=True)
class Arrivals:
    """When the sink accepted messages after a mark: the first, and the `count`-th."""

    first_at: float | None
    last_at: float | None
    count: int


class SmtpSink:
    """One `smtp-sink` accepting and discarding everything on 127.0.0.1:port."""

    def __init__(self, processes: Processes) -> None:
        self.port = free_port()
        args = [smtp_sink_path(), "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # it refuses to run as root without dropping privileges
        # 1000 is the listen backlog; -m lets every benchmark session in at once.
        args += ["-m", "512", f"127.0.0.1:{self.port}", "1000"]
        self._proc = processes.start(args, stdout=subprocess.PIPE)
        self._lock = threading.Lock()
        self._count = 0
        self._samples: list[tuple[float, int]] = []  # (time read, counter), when it changed
        self._reader = threading.Thread(target=self._read, name="smtp-sink-counter", daemon=True)
        self._reader.start()
        wait_for_port(self.port, proc=self._proc)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            now = time.monotonic()
            found = _COUNTER.findall(chunk[-64:])
            if found:
                count = int(found[-1])
                with self._lock:
                    if count != self._count:
                        self._count = count
                        self._samples.append((now, count))
            time.sleep(_READ_PAUSE)

    @property
    def count(self) -> int:
        """Messages accepted since the sink started."""
        with self._lock:
            return self._count

    def arrivals(self, mark: int, expected: int) -> Arrivals:
        """First arrival after counter value `mark`, and when `mark + expected` was reached."""
        with self._lock:
            samples = list(self._samples)
            count = self._count
        first = next((t for t, c in samples if c > mark), None)
        last = next((t for t, c in samples if c >= mark + expected), None)
        return Arrivals(first_at=first, last_at=last, count=count - mark)

    def wait_for(self, target: int, *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= target:
                return True
            time.sleep(0.01)
        return self.count >= target

    def forget_before(self, mark: int) -> None:
        """Drop samples older than a mark (keeps memory flat over long runs)."""
        with self._lock:
            self._samples = [(t, c) for t, c in self._samples if c > mark]
