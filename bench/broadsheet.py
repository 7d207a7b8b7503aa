"""Broadsheet end to end: a fresh database, N subscribers, one issue, real worker processes.

The newsletter, the issue and the send go through the real HTTP API (in process, over
ASGI); the worker runs as `python -m app.cli worker`, exactly as an operator starts it,
and sends into the benchmark's `smtp-sink`. Measured per send:

- enqueue: the `POST /api/v1/issues/{id}/send` call (it inserts every delivery row);
- first message: from that request to the sink accepting the first message;
- msgs/s: recipients divided by the time from the request until every delivery is final
  in the database (sent, failed, bounced, skipped or cancelled: the worker then marks the
  issue sent); also until the sink accepted the last message;
- worker CPU per message: user + system time of the worker process(es) over the send,
  from /proc/<pid>/stat; worker peak RSS: VmHWM from /proc/<pid>/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.main import create_app
from app.models import Issue
from app.settings import Settings, load_settings
from bench import content
from bench.database import ROOT, Database, fresh_database, load_subscribers
from bench.procs import MachineCpu, Processes, cpu_seconds, peak_rss_mb
from bench.sink import SmtpSink

SECRET_KEY = "bench-secret-key-0123456789abcdef"
ADMIN_KEY = "bench-admin-key-0123456789abcdef0123"
ISSUE_DONE = ("sent", "cancelled")  # an issue in either has no delivery left to send


def worker_env(db: Database, sink_port: int, pool_size: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "BROADSHEET_DATABASE_URL": db.url,
        "BROADSHEET_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "BROADSHEET_SEND_RATE": "0",
        "BROADSHEET_SECRET_KEY": SECRET_KEY,
        "BROADSHEET_SMTP_POOL_SIZE": str(pool_size),
        "BROADSHEET_BASE_URL": "http://127.0.0.1:8000",
        "BROADSHEET_LOG_LEVEL": "WARNING",
        "BROADSHEET_DEV": "0",
    }
    env.update(extra)
    return env


@dataclass
class SendFigures:
    recipients: int
    workers: int
    enqueue_s: float
    first_message_s: float | None
    last_accepted_s: float | None
    final_s: float | None
    statuses: dict[str, int]
    sink_messages: int
    worker_cpu_s: float
    worker_peak_rss_mb: float
    busy_cores: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def msgs_per_s(self) -> float | None:
        return self.recipients / self.final_s if self.final_s else None

    @property
    def msgs_per_s_sink(self) -> float | None:
        return self.recipients / self.last_accepted_s if self.last_accepted_s else None

    @property
    def cpu_ms_per_msg(self) -> float | None:
        sent = self.statuses.get("sent", 0)
        return self.worker_cpu_s * 1000 / sent if sent else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "workers": self.workers,
            "enqueue_s": self.enqueue_s,
            "first_message_s": self.first_message_s,
            "last_accepted_s": self.last_accepted_s,
            "final_s": self.final_s,
            "msgs_per_s": self.msgs_per_s,
            "msgs_per_s_sink": self.msgs_per_s_sink,
            "worker_cpu_ms_per_msg": self.cpu_ms_per_msg,
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
            "busy_cores": self.busy_cores,
            "statuses": self.statuses,
            "sink_messages": self.sink_messages,
            **self.extra,
        }


class Deployment:
    """One database with the app in process (for the API) and workers as subprocesses."""

    def __init__(
        self,
        db: Database,
        sink: SmtpSink,
        processes: Processes,
        *,
        pool_size: int,
        logs: Path,
        smtp_port: int | None = None,
    ) -> None:
        self.db = db
        self.sink = sink
        # Where the workers send: the sink, or a proxy in front of it (bench.latency).
        self.smtp_port = smtp_port or sink.port
        self.processes = processes
        self.pool_size = pool_size
        self.logs = logs
        self.settings: Settings = load_settings(
            database_url=db.url,
            smtp_url=f"smtp://127.0.0.1:{self.smtp_port}",
            secret_key=SECRET_KEY,
            admin_api_key=ADMIN_KEY,
            send_rate=0,
            smtp_pool_size=pool_size,
            base_url="http://127.0.0.1:8000",
            _env_file=None,
        )
        self.engine: AsyncEngine = create_engine(db.url)
        self.client = AsyncClient(
            transport=ASGITransport(app=create_app(self.settings, engine=self.engine)),
            base_url="http://127.0.0.1:8000",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=600,
        )
        self._newsletters = 0

    async def close(self) -> None:
        await self.client.aclose()
        await self.engine.dispose()

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def newsletter_with_subscribers(self, n: int) -> tuple[str, int]:
        """A new newsletter (through the API) with `n` active subscribers (bulk SQL)."""
        self._newsletters += 1
        slug = f"harbour-{self._newsletters}"
        await self.api(
            "POST",
            "/api/v1/newsletters",
            json={
                "slug": slug,
                "name": content.NEWSLETTER_NAME,
                "from_name": content.FROM_NAME,
                "from_email": content.FROM_EMAIL,
                "postal_address": content.POSTAL_ADDRESS,
                "double_opt_in": False,
            },
        )
        newsletter_id = int(await self.scalar("SELECT id FROM newsletter WHERE slug = :s", s=slug))
        if n <= 0:
            return slug, newsletter_id
        await load_subscribers(
            self.engine, newsletter_id=newsletter_id, n=n, prefix=f"r{self._newsletters}-"
        )
        return slug, newsletter_id

    async def create_issue(self, slug: str) -> int:
        body = await self.api(
            "POST", f"/api/v1/newsletters/{slug}/issues", json=content.issue_payload()
        )
        return int(body["id"])

    async def message_bytes(self, issue_id: int) -> int | None:
        response = await self.client.get(f"/api/v1/issues/{issue_id}/preview?format=eml")
        return len(response.content) if response.status_code == 200 else None

    def start_worker(self, tag: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{tag}.log", "ab")  # noqa: SIM115 - closed by the child
        try:
            return self.processes.start(
                [sys.executable, "-m", "app.cli", "worker"],
                env=worker_env(self.db, self.smtp_port, self.pool_size, **extra_env),
                cwd=ROOT,
                stderr=log,
                stdout=log,
            )
        finally:
            log.close()

    async def statuses(self, issue_id: int) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT status, count(*) FROM delivery WHERE issue_id = :i GROUP BY status"),
                {"i": issue_id},
            )
            return {str(status): int(count) for status, count in rows}

    async def send(
        self,
        issue_id: int,
        *,
        workers: int,
        timeout: float,
        profile: Path | None = None,
        already_enqueued: int | None = None,
    ) -> SendFigures:
        """Start the workers, let them settle, trigger the send and wait until it is done.

        With `already_enqueued` (the issue was started by `enqueue_only`), the issue is
        paused while the workers start (a worker with work waiting never sits idle), and
        the clock starts when it is resumed: that measures the draining."""
        if already_enqueued is not None:
            await self.api("POST", f"/api/v1/issues/{issue_id}/pause")
        procs = [self.start_worker(f"{issue_id}-{k}") for k in range(workers)]
        profiler: subprocess.Popen[bytes] | None = None
        try:
            await asyncio.gather(*(settled(proc) for proc in procs))
            profiler = start_profiler(self.processes, procs[0].pid, profile) if profile else None
            mark = self.sink.count
            db_before = await self.database_cpu()
            cpu_before = [cpu_seconds(p.pid) for p in procs]
            machine_before = MachineCpu.read()
            t0 = time.monotonic()
            if already_enqueued is None:
                answer = await self.api("POST", f"/api/v1/issues/{issue_id}/send")
                enqueue_s = time.monotonic() - t0
                recipients = int(answer["recipients"])
            else:
                await self.api("POST", f"/api/v1/issues/{issue_id}/resume")
                enqueue_s, recipients = 0.0, already_enqueued
            final_at = await self._wait_final(issue_id, t0, timeout)
            machine_after = MachineCpu.read()
            db_after = await self.database_cpu()
            statuses = await self.statuses(issue_id)  # counted after the CPU was read
            worker_cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu_before, strict=True))
            rss = max(peak_rss_mb(p.pid) for p in procs)
        finally:
            codes = [self.processes.stop(p, timeout=30) for p in procs]
            if profiler is not None:
                # py-spy writes its file when the process it samples exits.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiler.wait(60)
                self.processes.stop(profiler)
        arrivals = self.sink.arrivals(mark, recipients)
        return SendFigures(
            recipients=recipients,
            workers=workers,
            enqueue_s=enqueue_s,
            first_message_s=arrivals.first_at - t0 if arrivals.first_at else None,
            last_accepted_s=arrivals.last_at - t0 if arrivals.last_at else None,
            final_s=final_at - t0 if final_at else None,
            statuses=statuses,
            sink_messages=arrivals.count,
            worker_cpu_s=worker_cpu,
            worker_peak_rss_mb=rss,
            busy_cores=machine_after.busy_cores_since(machine_before),
            extra={
                "worker_exit_codes": codes,
                "database_cpu_ms_per_msg": _database_cpu_ms(db_before, db_after, statuses),
            },
        )

    async def database_cpu(self) -> dict[int, float]:
        """CPU seconds of each PostgreSQL backend serving this database (same machine)."""
        if self.db.kind != "postgresql":
            return {}
        async with self.engine.connect() as conn:
            pids = (
                await conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                )
            ).scalars()
            out: dict[int, float] = {}
            for pid in pids:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    out[int(pid)] = cpu_seconds(int(pid))
            return out

    async def _wait_final(self, issue_id: int, t0: float, timeout: float) -> float | None:
        """When every delivery is final: the worker marks the issue `sent` (or it ends
        cancelled) as soon as no delivery of it is queued or sending, so this reads that
        one row by its key every 100 ms. It used to count the issue's deliveries by status
        (every 5 s at 1,000,000 recipients): each count read the whole table, about 0.4 s
        of the database's CPU at 1,000,000 queued, inside the send whose database CPU per
        message is measured, and more as the send left dead row versions behind."""
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            status = await self.scalar("SELECT status FROM issue WHERE id = :i", i=issue_id)
            if status in ISSUE_DONE:
                return time.monotonic()
            await asyncio.sleep(0.1)
        return None

    async def enqueue_only(self, issue_id: int) -> tuple[float, int]:
        """Time `start_send` alone (one transaction, commit included); no worker runs."""
        from app.delivery.service import start_send

        sessionmaker = create_sessionmaker(self.engine)
        t0 = time.perf_counter()
        async with unit_of_work(sessionmaker) as session:
            issue = await session.get(Issue, issue_id)
            assert issue is not None
            recipients = await start_send(session, issue, settings=self.settings)
        return time.perf_counter() - t0, recipients


def _database_cpu_ms(
    before: dict[int, float], after: dict[int, float], statuses: dict[str, int]
) -> float | None:
    """PostgreSQL CPU per message sent: the backends' CPU over the send (a backend that
    started during the send counts from zero; one that ended is missed). The benchmark's
    own connection is among them; while the send runs it only reads the issue's row."""
    sent = statuses.get("sent", 0)
    if not after or not sent:
        return None
    used = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return used * 1000 / sent


async def settled(proc: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """Wait until a freshly started worker has finished importing and sits idle: its CPU
    time stops growing for 0.3 s."""
    deadline = time.monotonic() + timeout
    previous = -1.0
    quiet_since = time.monotonic()
    await asyncio.sleep(0.3)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} at start (see its log)")
        used = cpu_seconds(proc.pid)
        if used != previous:
            previous, quiet_since = used, time.monotonic()
        elif time.monotonic() - quiet_since >= 0.3:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("worker did not settle after start")


def start_profiler(processes: Processes, pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker, written as a speedscope file when it is stopped."""
    spy = Path(sys.executable).with_name("py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return processes.start(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "speedscope",
            "-o",
            str(out),
            "--rate",
            "200",
            "--nonblocking",
        ],
    )


@asynccontextmanager
async def deployment(
    db: Database,
    sink: SmtpSink,
    processes: Processes,
    *,
    pool_size: int,
    smtp_port: int | None = None,
) -> AsyncIterator[Deployment]:
    with tempfile.TemporaryDirectory(prefix="broadsheet-bench-logs-") as logs:
        dep = Deployment(
            db, sink, processes, pool_size=pool_size, logs=Path(logs), smtp_port=smtp_port
        )
        try:
            yield dep
        except BaseException:
            for log in sorted(Path(logs).glob("*.log")):
                tail = log.read_text(errors="replace")[-3000:]
                if tail.strip():
                    sys.stderr.write(f"--- {log.name} (tail)\n{tail}\n")
            raise
        finally:
            await dep.close()


async def message_size(sink: SmtpSink, processes: Processes) -> int | None:
    """The size of the message Broadsheet builds for the benchmark issue (its preview as
    .eml), so that the baselines can send as many bytes."""
    async with (
        fresh_database("sqlite", "size") as db,
        deployment(db, sink, processes, pool_size=1) as dep,
    ):
        slug, _ = await dep.newsletter_with_subscribers(0)
        return await dep.message_bytes(await dep.create_issue(slug))
