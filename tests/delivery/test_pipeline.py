"""The SMTP fast path (SPEC section 13): pipelining and chunking, each reply classified.

Against aiosmtpd as it is (no PIPELINING: the classic exchange) and made to offer
PIPELINING, against Postfix's `smtp-sink` (PIPELINING) and against a real Postfix smtpd
(PIPELINING and CHUNKING): every message arrives byte for byte, and every failure reply
at every step gets the same verdict as on the classic exchange, with the connection
still usable afterwards (but after a 421 or a dropped connection).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.delivery.classify import Outcome, Verdict
from app.delivery.pipeline import PipelinedSession
from app.delivery.smtp import SmtpConnection
from app.delivery.transport import Outgoing, SmtpTransport
from app.settings import parse_smtp_url
from tests.delivery.faulty_smtp import DROP, FaultyServer
from tests.delivery.real_mta import PostfixRelay, SmtpSink

FROM = "news@example.org"
MESSAGE = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n"
# With every header Postfix would otherwise add: it then only puts Received on top.
WHOLE = (
    b"From: news@example.org\r\nTo: reader@example.com\r\n"
    b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <pipe@example.org>\r\n" + MESSAGE
)


def transport_to(url: str, *, pipelining: bool = True) -> SmtpTransport:
    return SmtpTransport(SmtpConnection([parse_smtp_url(url)], timeout=10, pipelining=pipelining))


def session_of(transport: SmtpTransport) -> PipelinedSession | None:
    return transport.connection._session


@pytest.fixture
def pipelining() -> Iterator[FaultyServer]:
    faulty = FaultyServer()
    faulty.sink.pipelining = True
    faulty.start()
    yield faulty
    faulty.stop()


@pytest.fixture(params=["classic", "pipelining"])
def server(request: pytest.FixtureRequest) -> Iterator[FaultyServer]:
    faulty = FaultyServer()
    faulty.sink.pipelining = request.param == "pipelining"
    faulty.start()
    yield faulty
    faulty.stop()


async def test_many_messages_over_one_connection_arrive_byte_for_byte(
    server: FaultyServer,
) -> None:
    transport = transport_to(server.url)
    try:
        for n in range(20):
            outcome = await transport.send(FROM, f"r{n}@example.com", MESSAGE)
            assert outcome.verdict is Verdict.sent, outcome
        session = session_of(transport)
        assert (session is not None) is server.sink.pipelining
    finally:
        await transport.close()
    assert [m.data for m in server.sink.messages] == [MESSAGE] * 20
    assert [m.rcpt_tos for m in server.sink.messages] == [[f"r{n}@example.com"] for n in range(20)]


EXPECTED = [
    ("mail", "451 4.3.0 try later", Verdict.retry),
    ("mail", "550 5.1.0 sender unknown", Verdict.policy),
    ("mail", "421 4.3.2 closing", Verdict.unreachable),
    ("rcpt", "451 4.2.0 mailbox busy", Verdict.retry),
    ("rcpt", "550 5.1.1 no such user", Verdict.bounce),
    ("rcpt", "554 5.7.1 relay denied", Verdict.policy),
    ("rcpt", "421 4.3.2 closing", Verdict.unreachable),
    ("data", "452 4.3.1 out of storage", Verdict.retry),
    ("data", "554 5.6.0 content refused", Verdict.bounce),
    ("data", "550 5.7.1 spam", Verdict.policy),
    ("data", "421 4.3.2 closing", Verdict.unreachable),
]


@pytest.mark.parametrize(("stage", "reply", "verdict"), EXPECTED)
async def test_each_failure_reply_at_each_step_is_classified_and_the_next_message_goes(
    server: FaultyServer, stage: str, reply: str, verdict: Verdict
) -> None:
    bad = "bad@example.com"
    transport = transport_to(server.url)
    try:
        assert (await transport.send(FROM, "first@example.com", MESSAGE)).verdict is Verdict.sent
        server.sink.add(stage, reply, to=None if stage == "mail" else [bad])
        session = session_of(transport)
        outcome = await transport.send(FROM, bad, MESSAGE)
        assert outcome.verdict is verdict
        assert outcome.code == int(reply[:3])
        assert reply[4:] in outcome.reply
        server.sink.rules.clear()
        after = await transport.send(FROM, "after@example.com", MESSAGE)
        assert after.verdict is Verdict.sent, after
        if session is not None and not reply.startswith("421"):
            assert session_of(transport) is session  # the same connection went on
    finally:
        await transport.close()
    assert not server.sink.to(bad)
    assert [m.data for m in server.sink.to("after@example.com")] == [MESSAGE]


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
async def test_a_connection_dropped_at_each_step_is_a_retry_and_the_next_send_reconnects(
    server: FaultyServer, stage: str
) -> None:
    bad = "dropped@example.com"
    server.sink.add(stage, DROP, to=None if stage == "mail" else [bad], attempts=[0, 1])
    transport = transport_to(server.url)
    try:
        outcome = await transport.send(FROM, bad, MESSAGE)
        assert outcome.verdict is Verdict.retry
        assert outcome.code is None
        server.sink.clear()
        after = await transport.send(FROM, "after@example.com", MESSAGE)
        assert after.verdict is Verdict.sent, after
    finally:
        await transport.close()
    assert [m.data for m in server.sink.to("after@example.com")] == [MESSAGE]


def count_round_trips(transport: SmtpTransport) -> list[int]:
    """Counts the session's reads of replies (one per round trip) from now on."""
    session = session_of(transport)
    assert session is not None
    reads = [0]
    collect = session.reader.collect

    async def counted(count: int, timeout: float) -> list[Any]:
        reads[0] += 1
        return await collect(count, timeout)

    session.reader.collect = counted  # type: ignore[method-assign]
    return reads


async def send_chain(transport: SmtpTransport, recipients: list[str]) -> list[Outcome]:
    """Each message announced with the one before, as the sender pool does under load."""
    messages = [Outgoing(FROM, rcpt, MESSAGE + rcpt.encode() + b"\r\n") for rcpt in recipients]
    outcomes = []
    for n, message in enumerate(messages):
        then = messages[n + 1] if n + 1 < len(messages) else None
        outcomes.append(await transport.send(*message, then=then))
    return outcomes


async def test_announcing_the_next_message_makes_it_one_round_trip_a_message(
    pipelining: FaultyServer,
) -> None:
    transport = transport_to(pipelining.url)
    recipients = [f"c{n}@example.com" for n in range(10)]
    try:
        assert (await transport.send(FROM, "warm@example.com", MESSAGE)).verdict is Verdict.sent
        reads = count_round_trips(transport)
        outcomes = await send_chain(transport, recipients)
        round_trips = reads[0]
    finally:
        await transport.close()
    assert [o.verdict for o in outcomes] == [Verdict.sent] * 10
    assert round_trips == 11  # the first envelope, then one per message (unchained: 20)
    for rcpt in recipients:
        assert [m.data for m in pipelining.sink.to(rcpt)] == [MESSAGE + rcpt.encode() + b"\r\n"]


@pytest.mark.parametrize(
    ("stage", "reply", "verdict"),
    [
        ("mail", "451 4.3.0 try later", Verdict.retry),
        ("rcpt", "550 5.1.1 no such user", Verdict.bounce),
        ("data", "554 5.6.0 content refused", Verdict.bounce),
        ("rcpt", "421 4.3.2 closing", Verdict.unreachable),
        ("rcpt", DROP, Verdict.retry),
    ],
)
async def test_a_refusal_inside_a_chain_ends_only_that_message(
    pipelining: FaultyServer, stage: str, reply: str, verdict: Verdict
) -> None:
    recipients = [f"c{n}@example.com" for n in range(6)]
    bad = recipients[3]
    if stage == "mail":
        pipelining.sink.add("mail", reply, attempts=[0])  # every MAIL: the chain's 4th below
    else:
        pipelining.sink.add(stage, reply, to=[bad])
    transport = transport_to(pipelining.url)
    try:
        if stage == "mail":
            pipelining.sink.rules.clear()
            outcomes = await send_chain(transport, recipients[:3])
            pipelining.sink.add("mail", reply)
            outcomes += await send_chain(transport, [bad])
            pipelining.sink.rules.clear()
            outcomes += await send_chain(transport, recipients[4:])
        else:
            outcomes = await send_chain(transport, recipients)
    finally:
        await transport.close()
    expected = [Verdict.sent] * 6
    expected[3] = verdict
    assert [o.verdict for o in outcomes] == expected, outcomes
    assert not pipelining.sink.to(bad)
    for rcpt in recipients[:3] + recipients[4:]:
        assert len(pipelining.sink.to(rcpt)) == 1, rcpt


async def test_an_announced_message_that_does_not_follow_is_never_delivered(
    pipelining: FaultyServer,
) -> None:
    transport = transport_to(pipelining.url)
    try:
        first = await transport.send(
            FROM, "a@example.com", MESSAGE, then=Outgoing(FROM, "never@example.com", MESSAGE)
        )
        assert first.verdict is Verdict.sent
        other = await transport.send(FROM, "b@example.com", MESSAGE)
        assert other.verdict is Verdict.retry  # the connection had to go
        again = await transport.send(FROM, "b@example.com", MESSAGE)
        assert again.verdict is Verdict.sent
    finally:
        await transport.close()
    assert not pipelining.sink.to("never@example.com")
    assert len(pipelining.sink.to("b@example.com")) == 1


async def test_an_address_the_fast_path_cannot_quote_takes_the_classic_exchange(
    server: FaultyServer,
) -> None:
    transport = transport_to(server.url)
    try:
        outcome = await transport.send(FROM, '"odd name"@example.com', MESSAGE)
        assert outcome.verdict is Verdict.sent, outcome
    finally:
        await transport.close()
    assert server.sink.messages[0].rcpt_tos == ['"odd name"@example.com']


async def test_smtp_pipelining_can_be_switched_off() -> None:
    faulty = FaultyServer()
    faulty.sink.pipelining = True
    faulty.start()
    transport = transport_to(faulty.url, pipelining=False)
    try:
        assert (await transport.send(FROM, "a@example.com", MESSAGE)).verdict is Verdict.sent
        assert session_of(transport) is None
    finally:
        await transport.close()
        faulty.stop()


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
