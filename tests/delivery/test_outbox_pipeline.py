"""The outbox on the engine's pieces, alone: an in-memory store, scripted SMTP replies.

End to end (real databases, a real SMTP server) in test_outbox.py.
"""

from __future__ import annotations

import asyncio

from app.delivery.classify import Outcome, Verdict
from app.delivery.outbox import OutboxSender
from app.delivery.outcomes import Kind
from tests.conftest import make_settings
from tests.delivery.doubles import MemoryOutbox, Script

LOGIN_REFUSED = Outcome(Verdict.policy, 535, "535 5.7.8 bad credentials", before_send=True)
GREYLISTED = Outcome(Verdict.retry, 451, "451 4.7.1 greylisted")
NO_SUCH_USER = Outcome(Verdict.bounce, 550, "550 5.1.1 no such user")
SPF_FAIL = Outcome(Verdict.policy, 550, "550 5.7.23 SPF check failed")


async def run_once(store: MemoryOutbox, script: Script) -> None:
    config = make_settings(
        "sqlite+aiosqlite:///unused.db", 2525, retry_backoff_seconds=0.5, max_attempts=3
    )
    sender = OutboxSender(config, store, script.factory())
    await sender.run_once(asyncio.Event())


async def test_transactional_mail_uses_the_engines_retry_formula_and_fails_on_5xx() -> None:
    store = MemoryOutbox(4)
    script = Script({"reader2": [GREYLISTED], "reader3": [NO_SUCH_USER], "reader4": [SPF_FAIL]})
    await run_once(store, script)
    assert store.outcomes[1] == [(Kind.sent, "250 2.0.0 OK", 0.0)]
    assert store.outcomes[2] == [(Kind.retry, GREYLISTED.reply, 0.5)]  # 0.5 * 2**0
    assert store.outcomes[3] == [(Kind.failed, NO_SUCH_USER.reply, 0.0)]
    assert store.outcomes[4] == [(Kind.failed, SPF_FAIL.reply, 0.0)]


async def test_a_refused_login_makes_transactional_mail_wait_without_failing_it() -> None:
    store = MemoryOutbox(3)
    await run_once(store, Script({"reader1": [LOGIN_REFUSED]}))
    kind, reply, wait = store.outcomes[1][0]
    assert (kind, reply) == (Kind.release, LOGIN_REFUSED.reply)
    assert wait > 0
    # The server is held to be down meanwhile: the rest go back untouched.
    assert store.outcomes[2] == store.outcomes[3] == [(Kind.release, "not attempted", 0)]
