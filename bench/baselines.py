"""The baselines, measured into the same sink in the same run as Broadsheet.

- smtp-source: Postfix's C load generator, 16 persistent sessions: the physical limit.
- raw: aiosmtplib `sendmail()` of prebuilt bytes over the worker's pool size: the
  fastest a Python process can hand mail to SMTP.
- naive: per recipient Jinja2 + premailer + EmailMessage + `send_message()`.
- django-newsletter 1.2.1 (`/work/shared/peers/...` or BENCH_PEER_DIR): the Python peer.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.database import ROOT
from bench.procs import Processes
from bench.sink import SmtpSink

PEER_RUN = (
    Path(os.environ.get("BENCH_PEER_DIR", ROOT.parent / "shared/peers/django-newsletter")) / "run"
)
_PEER_LINE = re.compile(r"django-newsletter: (\d+) messages in ([\d.]+) s")


def message_size() -> int:
    """Bytes of the naive baseline's message, which the other baselines send too."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.clients", "size"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["bytes"])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def smtp_source(
    sink: SmtpSink,
    processes: Processes,
    *,
    messages: int,
    sessions: int,
    size: int,
    port: int | None = None,
) -> dict[str, Any]:
    """`smtp-source -d -s S -m N -l SIZE`: persistent sessions, payload of the same size,
    to the sink or to `port` (a proxy in front of it)."""
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    args = [tool, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    target = f"127.0.0.1:{port or sink.port}"
    args += ["-f", "bench@example.org", "-t", "reader@example.net", target]
    mark = sink.count
    cpu = _children_cpu()
    start = time.perf_counter()
    code, _out, err = processes.run(args, timeout=600)
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if code != 0:
        raise RuntimeError(f"smtp-source failed ({code}): {err[-500:]}")
    return {
        "messages": messages,
        "accepted": sink.count - mark,
        "seconds": seconds,
        "msgs_per_s": messages / seconds,
        "cpu_ms_per_msg": cpu * 1000 / messages,
        "sessions": sessions,
    }


def python_client(
    kind: str,
    sink: SmtpSink,
    processes: Processes,
    *,
    messages: int,
    connections: int,
    size: int = 0,
) -> dict[str, Any]:
    """`python -m bench.clients raw|naive` in its own process; its own CPU figures."""
    args = [sys.executable, "-m", "bench.clients", kind, "--port", str(sink.port)]
    args += ["--messages", str(messages), "--connections", str(connections), "--size", str(size)]
    mark = sink.count
    code, out, err = processes.run(args, cwd=ROOT, timeout=1200)
    if code != 0:
        raise RuntimeError(f"bench.clients {kind} failed: {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "messages": messages,
        "accepted": sink.count - mark,
        "seconds": result["seconds"],
        "msgs_per_s": messages / result["seconds"],
        "cpu_ms_per_msg": result["cpu_seconds"] * 1000 / messages,
        "connections": connections,
        "bytes": result["bytes"],
    }


def peer_available() -> bool:
    return PEER_RUN.is_file()


def django_newsletter(sink: SmtpSink, processes: Processes, *, messages: int) -> dict[str, Any]:
    """The peer's own script; its figure covers `submit_newsletter` from start to exit."""
    mark = sink.count
    env = {**os.environ, "PEER_SMTP_HOST": "127.0.0.1", "PEER_SMTP_PORT": str(sink.port)}
    code, out, err = processes.run(["bash", str(PEER_RUN), str(messages)], env=env, timeout=1800)
    found = _PEER_LINE.search(out)
    if code != 0 or not found:
        raise RuntimeError(f"django-newsletter run failed ({code}): {err[-1500:]}")
    sent, seconds = int(found.group(1)), float(found.group(2))
    arrivals = sink.arrivals(mark, sent)
    return {
        "messages": sent,
        "accepted": arrivals.count,
        "seconds": seconds,
        "msgs_per_s": sent / seconds,
        # From the first to the last message the sink accepted: without Django's start-up.
        "msgs_per_s_sink": (
            sent / (arrivals.last_at - arrivals.first_at)
            if arrivals.first_at and arrivals.last_at and arrivals.last_at > arrivals.first_at
            else None
        ),
    }
