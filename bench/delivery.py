"""The delivery engine alone: N readers, one send, `broadsheet worker` processes, a sink.

    .venv/bin/python -m bench.delivery --db postgresql --n 20000 [--workers 3]
        [--pool 8] [--sink count|smtp-sink] [--signal TERM|KILL --at 0.5]

- `--sink count` (default): an aiosmtpd server in a child process that counts copies
  and Message-IDs per recipient, so the run checks "every reader exactly once"
  (and, after a SIGKILL, "repeats within SMTP_POOL_SIZE + 100, same Message-ID");
- `--sink smtp-sink`: Postfix's C sink, for throughput (no per-recipient check).
- `--signal TERM|KILL --at F`: signal the first worker when a fraction F of the
  deliveries is final, then start a fresh worker to finish the send.

Prints messages/s from the send request until every delivery is final.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select

from app.delivery.service import start_send
from app.issues import service as issues
from app.kit.clock import utcnow
from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.models import Delivery, Issue, Newsletter, Story, Subscriber, Subscription
from app.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "bench-delivery-secret-0123456789"
FINAL = ("sent", "failed", "bounced", "skipped", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def make_database(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'bench.db'}", None
    name = f"bench_delivery_{os.getpid()}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


async def drop_database(name: str | None) -> None:
    if name:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def env_for(url: str, smtp_port: int, pool: int, lease: float) -> dict[str, str]:
    return {
        **os.environ,
        "BROADSHEET_DATABASE_URL": url,
        "BROADSHEET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "BROADSHEET_SECRET_KEY": SECRET,
        "BROADSHEET_BASE_URL": "http://127.0.0.1:8000",
        "BROADSHEET_SMTP_POOL_SIZE": str(pool),
        "BROADSHEET_LEASE_SECONDS": str(lease),
        "BROADSHEET_LOG_LEVEL": "WARNING",
    }


async def seed(url: str, n: int) -> int:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    now = utcnow()
    try:
        async with unit_of_work(sessionmaker) as session:
            newsletter = Newsletter(
                slug="bench",
                name="Bench Weekly",
                description="",
                from_name="Bench Weekly",
                from_email="news@example.org",
                postal_address="1 Main Street",
                double_opt_in=False,
                timezone="UTC",
                track_opens=False,
                track_clicks=False,
                template="default",
                auto_send_upcoming=False,
            )
            session.add(newsletter)
            await session.flush()
            for start in range(0, n, 5000):
                stop = min(n, start + 5000)
                ids = (
                    await session.execute(
                        insert(Subscriber).returning(Subscriber.id),
                        [
                            {
                                "email": f"reader{i}@example.com",
                                "name": f"Reader {i}",
                                "attributes": {},
                                "created_at": now,
                                "updated_at": now,
                            }
                            for i in range(start, stop)
                        ],
                    )
                ).scalars()
                await session.execute(
                    insert(Subscription),
                    [
                        {
                            "newsletter_id": newsletter.id,
                            "subscriber_id": sid,
                            "status": "active",
                            "source": "import",
                            "requested_at": now,
                            "soft_bounces": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for sid in ids
                    ],
                )
            issue = Issue(
                newsletter_id=newsletter.id, number=1, subject="Bench issue", status="draft"
            )
            session.add(issue)
            await session.flush()
            for position in range(10):
                session.add(
                    Story(
                        issue_id=issue.id,
                        position=position,
                        title=f"Story {position}",
                        body="A paragraph of text about the story. " * 20,
                        url=f"https://example.net/{position}",
                    )
                )
            return issue.id
    finally:
        await engine.dispose()


async def progress(url: str, issue_id: int) -> tuple[str, int, int]:
    engine = create_engine(url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            status = (
                await session.execute(select(Issue.status).where(Issue.id == issue_id))
            ).scalar_one()
            final = (
                await session.execute(
                    select(func.count()).where(
                        Delivery.issue_id == issue_id, Delivery.status.in_(FINAL)
                    )
                )
            ).scalar_one()
            total = (
                await session.execute(select(func.count()).where(Delivery.issue_id == issue_id))
            ).scalar_one()
        return str(status), int(final), int(total)
    finally:
        await engine.dispose()


def start_sink(kind: str, port: int, out: Path) -> subprocess.Popen[bytes]:
    if kind == "smtp-sink":
        path = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
        proc = subprocess.Popen(
            [path, *user, "-m", "512", f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL
        )
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.count_sink", str(port), str(out)], cwd=ROOT
        )
    wait_port(port)
    return proc


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--no-scheduler"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    print(f"worker pid {proc.pid}, log {log}", file=sys.stderr, flush=True)
    return proc


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    url, pg_name = await make_database(args.db, tmp)
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"db": args.db, "n": args.n, "workers": args.workers}
    try:
        env = {**os.environ, "BROADSHEET_DATABASE_URL": url, "BROADSHEET_DEV": "1"}
        subprocess.run(
            [sys.executable, "-m", "app.cli", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        issue_id = await seed(url, args.n)
        port = free_port()
        counts_file = tmp / "counts.json"
        sink = start_sink(args.sink, port, counts_file)
        worker_env = env_for(url, port, args.pool, args.lease)
        workers = [start_worker(worker_env, tmp / f"worker{i}.log") for i in range(args.workers)]
        procs = [sink, *workers]
        await asyncio.sleep(2.0)  # workers up and idle, as in production
        settings = load_settings(
            database_url=url,
            secret_key=SECRET,
            smtp_url=f"smtp://127.0.0.1:{port}",
            base_url="http://127.0.0.1:8000",
            _env_file=None,
        )
        engine = create_engine(url)
        started = time.monotonic()
        async with unit_of_work(create_sessionmaker(engine)) as session:
            recipients = await start_send(
                session, await issues.get(session, issue_id), settings=settings
            )
        enqueue = time.monotonic() - started
        await engine.dispose()
        signalled = False
        while True:
            status, final, total = await progress(url, issue_id)
            if args.signal and not signalled and final >= args.at * total:
                sig = signal.SIGKILL if args.signal == "KILL" else signal.SIGTERM
                t0 = time.monotonic()
                workers[0].send_signal(sig)
                code = workers[0].wait(timeout=60)
                result["signal"] = {
                    "signal": args.signal,
                    "at_final": final,
                    "exit_code": code,
                    "exit_seconds": time.monotonic() - t0,
                }
                workers.append(start_worker(worker_env, tmp / "worker-restarted.log"))
                procs.append(workers[-1])
                signalled = True
            if status == "sent":
                break
            if time.monotonic() - started > args.timeout:
                raise RuntimeError(f"not done after {args.timeout}s: {final}/{total}")
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        result |= {
            "recipients": recipients,
            "enqueue_seconds": round(enqueue, 3),
            "seconds": round(elapsed, 2),
            "msgs_per_s": round(recipients / elapsed, 1),
        }
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=60)
        if args.sink == "count":
            sink.send_signal(signal.SIGTERM)
            sink.wait(timeout=30)
            counts = json.loads(counts_file.read_text())
            per = counts["per_recipient"]
            expected = {f"reader{i}@example.com" for i in range(args.n)}
            result |= {
                "accepted": counts["messages"],
                "missing": len(expected - set(per)),
                "repeats": sum(c - 1 for c in per.values()),
                "max_copies": max(per.values()) if per else 0,
                "recipients_with_two_message_ids": counts["mixed_ids"],
            }
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await drop_database(pg_name)


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--lease", type=float, default=10)
    p.add_argument("--sink", choices=["count", "smtp-sink"], default="count")
    p.add_argument("--signal", choices=["TERM", "KILL"])
    p.add_argument("--at", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=1800)
    result = asyncio.run(main(p.parse_args()))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
