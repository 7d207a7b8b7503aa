"""The public subscribe endpoint under `wrk`, served as the README recommends.

`broadsheet serve --workers W` on PostgreSQL, rate limits raised out of the way (they
would otherwise answer 429 to a single client on loopback, which is their job), one
newsletter, then `wrk --latency` with bench/subscribe.lua POSTing a new address per
request. A short warm-up run precedes the measured one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import content
from bench.broadsheet import ADMIN_KEY, SECRET_KEY
from bench.database import ROOT, Database
from bench.procs import Processes, free_port, wait_for_port

LUA = Path(__file__).resolve().parent / "subscribe.lua"


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _run_wrk(
    url: str, *, seconds: int, connections: int, threads: int, label: str
) -> dict[str, Any]:
    wrk = wrk_path()
    assert wrk is not None
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        label,
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("BENCH-JSON "))
            return data
    raise RuntimeError(f"wrk printed no result (exit {result.returncode}): {result.stderr[-500:]}")


def run_subscribe(
    db: Database,
    processes: Processes,
    *,
    api_workers: int,
    seconds: int,
    connections: int,
    double_opt_in: bool,
) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "BROADSHEET_DATABASE_URL": db.url,
        "BROADSHEET_SECRET_KEY": SECRET_KEY,
        "BROADSHEET_ADMIN_API_KEY": ADMIN_KEY,
        "BROADSHEET_BASE_URL": f"http://127.0.0.1:{port}",
        "BROADSHEET_SUBSCRIBE_RATE_LIMIT": "100000000/second",
        "BROADSHEET_SUBSCRIBE_ADDRESS_LIMIT": "100000000/hour",
        "BROADSHEET_LOG_LEVEL": "WARNING",
        "BROADSHEET_DEV": "0",
    }
    log = tempfile.NamedTemporaryFile(prefix="broadsheet-bench-api-", suffix=".log")  # noqa: SIM115
    server = processes.start(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(api_workers),
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        wait_for_port(port, timeout=30, proc=server)
        base = f"http://127.0.0.1:{port}"
        slug = f"load-{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=base, timeout=30) as client:
            _wait_healthy(client)
            response = client.post(
                "/api/v1/newsletters",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                json={
                    "slug": slug,
                    "name": content.NEWSLETTER_NAME,
                    "from_name": content.FROM_NAME,
                    "from_email": content.FROM_EMAIL,
                    "postal_address": content.POSTAL_ADDRESS,
                    "double_opt_in": double_opt_in,
                },
            )
            if response.status_code >= 300:
                raise RuntimeError(
                    f"creating the newsletter: {response.status_code} {response.text[:300]}"
                )
            probe = client.post(
                f"/newsletters/{slug}/subscribe", json={"email": "probe@example.org"}
            )
            if probe.status_code != 202:
                raise RuntimeError(f"subscribe answered {probe.status_code}: {probe.text[:300]}")
        url = f"{base}/newsletters/{slug}/subscribe"
        label = uuid.uuid4().hex[:8]
        _run_wrk(url, seconds=2, connections=connections, threads=2, label=f"warm{label}")
        result = _run_wrk(url, seconds=seconds, connections=connections, threads=2, label=label)
    except BaseException:
        log.flush()
        sys.stderr.write(
            f"--- API server log (tail)\n{Path(log.name).read_text(errors='replace')[-3000:]}\n"
        )
        raise
    finally:
        processes.stop(server, timeout=20)
        log.close()
    seconds_run = result["duration_us"] / 1e6
    return {
        "api_workers": api_workers,
        "connections": connections,
        "double_opt_in": double_opt_in,
        "requests": result["requests"],
        "requests_per_s": result["requests"] / seconds_run if seconds_run else None,
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "non_2xx": result["non_2xx_3xx"],
        "socket_errors": result["connect_errors"]
        + result["read_errors"]
        + result["write_errors"]
        + result["timeouts"],
    }


def _wait_healthy(client: httpx.Client, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the API did not become healthy")
