"""Processes the benchmark starts: free ports, clean shutdown, CPU and memory from /proc.

Every process is started through `Processes`, which terminates whatever is still running
when the benchmark leaves its `with` block, also on an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 10.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis
    # start at field 3, so utime and stime (fields 14 and 15) are items 11 and 12.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of resident memory (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@dataclass(frozen=True, slots=True)
class MachineCpu:
    """Jiffies of the whole machine, busy and total, to compute utilisation over an interval."""

    busy: int
    total: int

    @staticmethod
    def read() -> MachineCpu:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(v) for v in first]
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])  # guest time is already counted in user
        return MachineCpu(busy=total - idle, total=total)

    def busy_cores_since(self, earlier: MachineCpu) -> float:
        """Average number of busy cores between `earlier` and this sample."""
        total = self.total - earlier.total
        if total <= 0:
            return 0.0
        return (self.busy - earlier.busy) / total * (os.cpu_count() or 1)


class Processes:
    """Starts child processes and stops every one of them on exit, even on error."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[Any]] = []

    def start(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(args),
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            # Its own process group, so that stopping it also stops anything it started
            # (uvicorn's worker processes), and Ctrl-C in the terminal reaches only us.
            start_new_session=True,
        )
        self._children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], *, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; the exit status."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Children of a stopped leader (uvicorn workers) may outlive it for a moment.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self._children:
            self._children.remove(proc)
        return proc.returncode

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[int, str, str]:
        """Run to completion (exit status, stdout, stderr); stopped with the others on exit."""
        proc = self.start(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc, timeout=5.0)
            raise
        finally:
            if proc in self._children and proc.poll() is not None:
                self._children.remove(proc)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop_all(self) -> None:
        for proc in list(reversed(self._children)):
            self.stop(proc, timeout=5.0)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so that a killed benchmark still cleans up."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
