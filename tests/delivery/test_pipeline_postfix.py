"""The SMTP fast path against real Postfix programs (SPEC section 13).

Postfix's `smtp-sink` offers PIPELINING (not CHUNKING): messages byte for byte, on the
worker's uvloop too, and a 421 or a hang-up at each step. A whole Postfix instance on
loopback offers PIPELINING and CHUNKING: messages relayed byte for byte, and its
refusals of a sender, a recipient and a content inside a chunked transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from app.delivery.classify import Verdict
from tests.delivery.faulty_smtp import FaultyServer
from tests.delivery.real_mta import PostfixRelay, SmtpSink
from tests.delivery.test_pipeline import FROM, MESSAGE, session_of, transport_to

# With every header Postfix would otherwise add: it then only puts Received on top.
WHOLE = (
    b"From: news@example.org\r\nTo: reader@example.com\r\n"
    b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <pipe@example.org>\r\n" + MESSAGE
)


# -- Postfix's smtp-sink: PIPELINING, and a 421 or a hang-up at each step -------------------


def lf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n")


async def test_smtp_sink_takes_pipelined_messages_byte_for_byte() -> None:
    sink = SmtpSink()
    transport = transport_to(sink.url)
    try:
        for n in range(10):
            outcome = await transport.send(FROM, f"r{n}@example.com", MESSAGE)
            assert outcome.verdict is Verdict.sent, outcome
        assert session_of(transport) is not None
    finally:
        await transport.close()
        dumps = sink.wait_for(10, b"last line")
        sink.stop()
    assert len(dumps) == 10
    for dump in dumps:
        assert lf(MESSAGE) in dump


def test_the_fast_path_runs_on_uvloop_as_the_worker_does() -> None:
    uvloop = pytest.importorskip("uvloop")
    sink = SmtpSink()

    async def send_ten() -> None:
        transport = transport_to(sink.url)
        try:
            for n in range(10):
                outcome = await transport.send(FROM, f"u{n}@example.com", MESSAGE)
                assert outcome.verdict is Verdict.sent, outcome
            assert session_of(transport) is not None  # uvloop's transport was taken over
        finally:
            await transport.close()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(send_ten())
        dumps = sink.wait_for(10, b"last line")
    finally:
        sink.stop()
    assert sum(lf(MESSAGE) in dump for dump in dumps) == 10


@pytest.mark.parametrize(
    ("flags", "verdict"),
    [
        (["-Q", "mail"], Verdict.unreachable),
        (["-Q", "rcpt"], Verdict.unreachable),
        (["-Q", "data"], Verdict.unreachable),
        (["-Q", "."], Verdict.unreachable),
        (["-q", "rcpt"], Verdict.retry),
        (["-q", "."], Verdict.retry),
    ],
)
async def test_smtp_sink_closing_at_each_step(flags: list[str], verdict: Verdict) -> None:
    sink = SmtpSink(flags)
    transport = transport_to(sink.url)
    try:
        outcome = await transport.send(FROM, "a@example.com", MESSAGE)
        assert outcome.verdict is verdict, outcome
        assert not transport.connection.is_connected
    finally:
        await transport.close()
        sink.stop()


# -- a real Postfix smtpd: PIPELINING and CHUNKING ------------------------------------------


@pytest.fixture(scope="module")
def relay() -> Iterator[tuple[PostfixRelay, FaultyServer]]:
    downstream = FaultyServer()
    downstream.start()
    postfix = PostfixRelay(
        downstream.port,
        refuse={
            "refused@sender.test": "553 5.7.1 sender refused",
            "gone@example.com": "550 5.1.1 no such user",
            "busy@example.com": "450 4.2.1 mailbox busy",
        },
        refuse_subjects={"content refused": "5.7.1 content refused"},
    )
    yield postfix, downstream
    postfix.stop()
    downstream.stop()


async def test_postfix_takes_chunked_messages_and_relays_them_byte_for_byte(
    relay: tuple[PostfixRelay, FaultyServer],
) -> None:
    postfix, downstream = relay
    transport = transport_to(postfix.url)
    recipients = [f"chunk{n}@example.com" for n in range(10)]
    try:
        for rcpt in recipients:
            outcome = await transport.send(FROM, rcpt, WHOLE)
            assert outcome.verdict is Verdict.sent, outcome
        session = session_of(transport)
        assert session is not None
        assert session.chunking
    finally:
        await transport.close()
    for rcpt in recipients:
        arrived(downstream, rcpt)
        (got,) = downstream.sink.to(rcpt)
        # Postfix adds its Received header on top; the rest is ours, byte for byte.
        assert got.data.endswith(WHOLE)
    assert "bdat=10" in postfix.log()


@pytest.mark.parametrize(
    ("sender", "rcpt", "subject", "verdict", "code"),
    [
        ("refused@sender.test", "x1@example.com", "hello", Verdict.policy, 553),
        (FROM, "gone@example.com", "hello", Verdict.bounce, 550),
        (FROM, "busy@example.com", "hello", Verdict.retry, 450),
        (FROM, "x2@example.com", "content refused", Verdict.policy, 550),
    ],
)
async def test_postfix_refusals_in_a_chunked_transaction(
    relay: tuple[PostfixRelay, FaultyServer],
    sender: str,
    rcpt: str,
    subject: str,
    verdict: Verdict,
    code: int,
) -> None:
    postfix, downstream = relay
    transport = transport_to(postfix.url)
    message = MESSAGE.replace(b"Subject: dots", b"Subject: " + subject.encode())
    after = f"after-{rcpt}"
    try:
        outcome = await transport.send(sender, rcpt, message)
        assert (outcome.verdict, outcome.code) == (verdict, code), outcome
        session = session_of(transport)
        assert session is not None
        assert session.chunking
        assert (await transport.send(FROM, after, MESSAGE)).verdict is Verdict.sent
        assert session_of(transport) is session
    finally:
        await transport.close()
    arrived(downstream, after)
    assert not downstream.sink.to(rcpt)


def arrived(downstream: FaultyServer, rcpt: str, timeout: float = 30.0) -> None:
    """Wait (bounded) until Postfix relayed the message to `rcpt` downstream."""
    deadline = time.monotonic() + timeout
    while not downstream.sink.to(rcpt):
        assert time.monotonic() < deadline, f"Postfix did not relay the message to {rcpt}"
        time.sleep(0.05)
