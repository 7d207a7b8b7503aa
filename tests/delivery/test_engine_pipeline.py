"""The engine's pipeline alone: an in-memory store and a transport with scripted replies.

The same behaviour is tested end to end (real databases, a real SMTP server) in
test_engine.py; these run in milliseconds and show each rule on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes
from typing import Any

from app.delivery.classify import Outcome, Verdict
from app.delivery.engine import DeliveryEngine
from app.delivery.writer import FLUSH_EVERY_MESSAGES
from app.settings import Settings
from tests.conftest import make_settings
from tests.delivery.conftest import wait_until
from tests.delivery.doubles import MemoryStore, Script

GREYLISTED = Outcome(Verdict.retry, 451, "451 4.7.1 greylisted, try again later")
NO_SUCH_USER = Outcome(Verdict.bounce, 550, "550 5.1.1 no such user")
SPF_FAIL = Outcome(Verdict.policy, 550, "550 5.7.23 SPF check failed")
CLOSING = Outcome(Verdict.unreachable, 421, "421 4.3.2 service shutting down")


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_pool_size": 4,
        "batch_size": 60,
        "retry_backoff_seconds": 0.01,
        "max_attempts": 4,
    }
    return make_settings("sqlite+aiosqlite:///unused.db", 2525, **(values | overrides))


@asynccontextmanager
async def engine_running(
    store: MemoryStore, script: Script, config: Settings
) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    engine = DeliveryEngine(config, store, script.factory, owner="unit-worker")
    task = asyncio.create_task(engine.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def finished(store: MemoryStore, *statuses: str) -> None:
    async def check() -> bool:
        return store.issues[1] in statuses

    await wait_until(check)


async def test_every_reader_gets_one_message_and_outcomes_are_written_in_batches() -> None:
    config = settings()
    store, script = MemoryStore(config, 250), Script()
    async with engine_running(store, script, config):
        await finished(store, "sent")
    assert sorted(rcpt for rcpt, _ in script.sends) == sorted(r.email for r in store.rows.values())
    assert {row.status for row in store.rows.values()} == {"sent"}
    # Batches, never one write per message, and never more unwritten than the crash
    # bound of SPEC section 7: 100 + one message in flight per open connection.
    assert sum(store.batches) == 250
    ceiling = max(config.smtp_pool_size, config.smtp_max_connections)
    assert max(store.batches) <= FLUSH_EVERY_MESSAGES + ceiling
    assert len(store.batches) < 250
    first = message_from_bytes(script.sends[0][1])
    row = store.rows[1]
    assert row.message_id is not None
    assert first["Message-ID"] == row.message_id
    assert all(t.closed for t in script.transports)


async def test_a_transient_failure_retries_with_growing_backoff_then_is_sent() -> None:
    config = settings(retry_backoff_seconds=0.02)
    store, script = MemoryStore(config, 3), Script({"reader1": [GREYLISTED, GREYLISTED]})
    async with engine_running(store, script, config):
        await finished(store, "sent")
    row = store.rows[1]
    assert (row.status, row.attempts) == ("sent", 3)
    assert row.waits == [0.02, 0.04]  # RETRY_BACKOFF_SECONDS * 2**attempts
    assert script.sent_to("reader1@example.com") == 3


async def test_a_transient_failure_ends_failed_after_max_attempts_as_a_soft_bounce() -> None:
    config = settings(max_attempts=2)
    store, script = MemoryStore(config, 2), Script({"reader1": [GREYLISTED] * 5})
    async with engine_running(store, script, config):
        await finished(store, "sent")
    assert (store.rows[1].status, store.rows[1].attempts) == ("failed", 2)
    assert store.bounces == [("reader1@example.com", "soft")]
    assert store.rows[2].status == "sent"


async def test_a_5xx_for_the_recipient_is_a_bounce_and_is_not_retried() -> None:
    config = settings()
    store, script = MemoryStore(config, 3), Script({"reader2": [NO_SUCH_USER]})
    async with engine_running(store, script, config):
        await finished(store, "sent")
    assert store.rows[2].status == "bounced"
    assert store.rows[2].reply == NO_SUCH_USER.reply
    assert store.bounces == [("reader2@example.com", "hard")]
    assert script.sent_to("reader2@example.com") == 1


async def test_a_run_of_policy_refusals_pauses_the_send_and_blames_no_reader() -> None:
    config = settings(smtp_pool_size=1)
    refusals = {f"reader{i}": [SPF_FAIL] for i in range(1, 13)}
    store, script = MemoryStore(config, 12), Script(refusals)
    async with engine_running(store, script, config):
        await finished(store, "paused")
    assert "5.7" in store.pause_reasons[1]
    assert SPF_FAIL.reply in store.pause_reasons[1]
    assert all(row.attempts == 0 for row in store.rows.values())
    assert {row.status for row in store.rows.values()} <= {"queued", "sending"}
    assert store.bounces == []


async def test_a_421_only_delays_the_message_and_uses_no_attempt() -> None:
    config = settings()
    store, script = MemoryStore(config, 3), Script({"reader3": [CLOSING, CLOSING]})
    async with engine_running(store, script, config):
        await finished(store, "sent")
    row = store.rows[3]
    assert (row.status, row.attempts) == ("sent", 1)
    assert script.sent_to("reader3@example.com") == 3
    assert len(row.waits) >= 2
    assert all(wait > 0 for wait in row.waits)


async def test_stopping_mid_send_loses_nothing_and_repeats_nothing() -> None:
    config = settings(smtp_pool_size=2)
    store, script = MemoryStore(config, 400), Script(delay=0.002)
    async with engine_running(store, script, config) as stop:

        async def some_sent() -> bool:
            return len(script.sends) >= 50

        await wait_until(some_sent)
        stop.set()
    sent = [row.email for row in store.rows.values() if row.status == "sent"]
    assert sorted(sent) == sorted(rcpt for rcpt, _ in script.sends)
    assert {row.status for row in store.rows.values()} <= {"sent", "queued"}
    assert all(row.owner is None for row in store.rows.values())
    assert all(row.attempts == 0 for row in store.rows.values() if row.status == "queued")
