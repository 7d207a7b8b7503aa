"""Load: 200 concurrent subscribe clients for 60 s against a real API server process while a
50,000-recipient send runs through a worker process into a sink. No 5xx, every accepted
subscription stored with its confirmation sent exactly once, and the send completes.
Prints requests per second and p50/p99 latency. Loopback only; bounded in time and count
(BROADSHEET_LOAD_SECONDS, BROADSHEET_LOAD_READERS, BROADSHEET_LOAD_CLIENTS to scale down)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Newsletter, OutboxMessage, Subscription
from tests.reliability.conftest import SpawnWorker
from tests.reliability.harness import (
    ApiServer,
    SinkServer,
    outcome_of,
    report,
    seed_send,
    wait_settled,
    worker_env,
)

SECONDS = float(os.environ.get("BROADSHEET_LOAD_SECONDS", "60"))
READERS = int(os.environ.get("BROADSHEET_LOAD_READERS", "50000"))
CLIENTS = int(os.environ.get("BROADSHEET_LOAD_CLIENTS", "200"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def subscribe_client(
    http: httpx.AsyncClient,
    url: str,
    number: int,
    deadline: float,
    latencies: list[float],
    statuses: Counter[int],
    accepted: list[str],
    resets: list[str],
) -> None:
    i = 0
    while time.monotonic() < deadline:
        address = f"load-{number}-{i}@example.org"
        i += 1
        started = time.monotonic()
        body = {"email": address, "name": f"Load {number}"}
        try:
            try:
                response = await http.post(url, json=body)
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                # A kept-alive connection reset before any answer: what browsers and
                # proxies retry once on a new connection. The reset is counted; the retry
                # must then succeed, and a repeat of an accepted address must not bring a
                # second confirmation (the assertions below check both).
                resets.append(address)
                report(f"  connection reset, retrying once: {exc!r} (cause {exc.__cause__!r})")
                response = await http.post(url, json=body)
        except httpx.HTTPError as exc:
            statuses[-1] += 1
            waited = time.monotonic() - started
            report(f"  transport error after {waited:.1f} s: {exc!r} (cause {exc.__cause__!r})")
            continue
        latencies.append(time.monotonic() - started)
        statuses[response.status_code] += 1
        if response.status_code == 202:
            accepted.append(address)


@pytest.mark.faults
@pytest.mark.slow
async def test_two_hundred_subscribers_a_second_while_a_big_send_runs(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
    tmp_path: Path,
) -> None:
    created = await client.post(
        "/api/v1/newsletters",
        json={
            "slug": "signup",
            "name": "Signup",
            "from_name": "Signup",
            "from_email": "signup@example.com",
            "double_opt_in": True,
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    issue_id, emails = await seed_send(
        sessionmaker, client, admin_headers, readers=READERS, slug="bigsend"
    )
    limits = {
        "BROADSHEET_SUBSCRIBE_RATE_LIMIT": "100000000/minute",
        "BROADSHEET_SUBSCRIBE_ADDRESS_LIMIT": "1000/hour",
        "BROADSHEET_LEASE_SECONDS": "60",
    }
    worker = spawn_worker(**limits)
    api = ApiServer(worker_env(database_url, sink_server.url, **limits), tmp_path / "api.log")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    resets: list[str] = []
    try:
        limits_ = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(limits=limits_, timeout=60) as http:
            await api.wait_ready(http)
            url = f"{api.url}/newsletters/signup/subscribe"
            started = time.monotonic()
            deadline = started + SECONDS
            await asyncio.gather(
                *(
                    subscribe_client(http, url, n, deadline, latencies, statuses, accepted, resets)
                    for n in range(CLIENTS)
                )
            )
            elapsed = time.monotonic() - started
        sent_during_load = sink_server.sink.count()
        delivery = await wait_settled(sessionmaker, issue_id, timeout=1800, worker=worker)
        # Every confirmation out of the outbox (bounded wait).
        wait_until = time.monotonic() + 300
        while time.monotonic() < wait_until:
            async with sessionmaker() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status.in_(("queued", "sending")))
                )
            if not left:
                break
            await asyncio.sleep(0.5)
        assert worker.terminate() == 0
    finally:
        api.close()
    total = sum(statuses.values())
    received = sink_server.sink.snapshot()
    confirmations = Counter(rcpt for rcpt, _ in received if rcpt.startswith("load-"))
    result = outcome_of(emails, [r for r in received if not r[0].startswith("load-")], delivery)
    async with sessionmaker() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(Subscription)
            .join(Newsletter)
            .where(Newsletter.slug == "signup")
        )
    line = (
        f"[load] {CLIENTS} clients x {SECONDS:.0f}s: {total} requests, "
        f"{total / elapsed:.0f} req/s, p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, statuses {dict(statuses)}; "
        f"connection resets retried {len(resets)}; "
        f"accepted {len(accepted)}, stored {stored}, confirmations {sum(confirmations.values())} "
        f"({len(confirmations)} distinct); send of {READERS}: {sent_during_load} during the load, "
        f"outcome {result}"
    )
    report(
        line,
        kind="load",
        clients=CLIENTS,
        seconds=SECONDS,
        requests=total,
        rps=round(total / elapsed),
        p50_ms=round(percentile(latencies, 0.5) * 1000),
        p99_ms=round(percentile(latencies, 0.99) * 1000),
        statuses=dict(statuses),
        accepted=len(accepted),
        connection_resets=len(resets),
        stored=stored,
        confirmations=sum(confirmations.values()),
        readers=READERS,
        lost=result.lost,
        repeats=result.repeats,
        confirmations_repeated=sum(n - 1 for n in confirmations.values()),
    )
    failed = [code for code in statuses if code >= 500 or code < 0]
    assert not failed, f"{line}\n--- API server log (tail)\n{api.worker.output()[-3000:]}"
    # Retrying a reset keeps one from failing the run, not a server that resets often:
    # with uvicorn's 5 s keep-alive runs met up to 3 in 2,761 requests; with 90 s, none.
    assert len(resets) * 1000 <= total, line
    assert stored == len(accepted), line
    assert set(confirmations) == set(accepted), line
    assert all(n == 1 for n in confirmations.values()), line
    assert result.statuses == {"sent": READERS}, line
    assert result.missing == 0, line
    assert result.repeats == 0, line
