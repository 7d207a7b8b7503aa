"""The SMTP server flapping through a send (up, down, slow, refusing with 421): the send
completes, nothing is lost, and nothing repeats beyond the messages whose connection was
cut after the server took them (at most one per pooled connection per cut)."""

from __future__ import annotations

import asyncio
import random

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.reliability.conftest import SpawnWorker
from tests.reliability.harness import (
    SinkServer,
    fault_seed,
    outcome_of,
    report,
    seed_send,
    wait_for_count,
    wait_settled,
)

POOL = 8
MAX_CONNECTIONS = 32  # a cut repeats at most one message per open connection
SEED = fault_seed()


async def flap_through_a_send(
    *,
    readers: int,
    cycles: int,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
    max_attempts: int,
    seconds: tuple[float, float] = (1.0, 3.0),
) -> None:
    rng = random.Random(SEED)
    report(f"\n[flap] seed={SEED} readers={readers} cycles={cycles}")
    issue_id, emails = await seed_send(
        sessionmaker, client, admin_headers, readers=readers, slug=f"flap{readers}"
    )
    sink = sink_server.sink
    worker = spawn_worker(
        BROADSHEET_SMTP_POOL_SIZE=str(POOL),
        BROADSHEET_SMTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        BROADSHEET_MAX_ATTEMPTS=str(max_attempts),
    )
    cuts = 0
    step = readers // (cycles * 4 + 1)
    target = 0
    for _ in range(cycles):
        for phase in rng.sample(["down", "slow", "421"], 3):
            target += step
            await wait_for_count(sink, target, timeout=120, worker=worker)
            pause = rng.uniform(*seconds)
            report(f"  {phase} for {pause:.1f}s after {sink.count()} messages")
            if phase == "down":
                sink_server.stop()
                cuts += 1
                await asyncio.sleep(pause)
                sink_server.start()
            else:
                sink.mode = phase
                await asyncio.sleep(pause)
                sink.mode = "up"
    statuses = await wait_settled(sessionmaker, issue_id, timeout=240, worker=worker)
    assert worker.terminate() == 0
    result = outcome_of(emails, sink.snapshot(), statuses)
    report(
        f"  [flap {readers}] outcome: {result}; refused with 421: {sink.refused}",
        kind="flap",
        seed=SEED,
        readers=readers,
        cycles=cycles,
        cuts=cuts,
        refused_421=sink.refused,
        lost=result.lost,
        repeats=result.repeats,
    )
    assert result.statuses == {"sent": readers}, f"seed={SEED}: {result}"
    assert result.missing == 0
    assert result.mixed_message_ids == 0
    assert result.repeats <= MAX_CONNECTIONS * cuts, f"seed={SEED}: {result}"
    assert sink.refused > 0


async def test_a_send_survives_the_smtp_server_going_down_slow_and_421(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    await flap_through_a_send(
        readers=200,
        cycles=1,
        sessionmaker=sessionmaker,
        client=client,
        admin_headers=admin_headers,
        sink_server=sink_server,
        spawn_worker=spawn_worker,
        max_attempts=50,
        seconds=(0.3, 0.8),
    )


@pytest.mark.faults
async def test_a_long_send_survives_repeated_flapping(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    await flap_through_a_send(
        readers=5000,
        cycles=4,
        sessionmaker=sessionmaker,
        client=client,
        admin_headers=admin_headers,
        sink_server=sink_server,
        spawn_worker=spawn_worker,
        max_attempts=50,
    )


@pytest.mark.faults
async def test_a_few_seconds_of_421_use_up_no_delivery_with_default_attempts(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    sink_server: SinkServer,
    spawn_worker: SpawnWorker,
) -> None:
    # MAX_ATTEMPTS at its default (5) and the default-like short backoff of the suite:
    # a server saying 421 to everyone for a few seconds must not fail deliveries.
    await flap_through_a_send(
        readers=2000,
        cycles=2,
        sessionmaker=sessionmaker,
        client=client,
        admin_headers=admin_headers,
        sink_server=sink_server,
        spawn_worker=spawn_worker,
        max_attempts=5,
    )
