"""The SMTP fast path (SPEC section 13): pipelining, each reply classified.

Against aiosmtpd as it is (no PIPELINING: the classic exchange) and made to offer
PIPELINING: every message arrives byte for byte, every failure reply at every step gets
the same verdict on both, with the connection still usable afterwards (but after a 421
or a dropped connection), and a chain of announced messages costs one round trip a
message. Real Postfix programs: test_pipeline_postfix.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.delivery.classify import Outcome, Verdict
from app.delivery.pipeline import PipelinedSession
from app.delivery.smtp import SmtpConnection
from app.delivery.transport import Outgoing, SmtpTransport
from app.settings import parse_smtp_url
from tests.delivery.faulty_smtp import DROP, FaultyServer

FROM = "news@example.org"
MESSAGE = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n"


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


async def test_closing_with_a_message_announced_delivers_nothing_of_it(
    pipelining: FaultyServer,
) -> None:
    transport = transport_to(pipelining.url)
    then = Outgoing(FROM, "never@example.com", MESSAGE)
    try:
        assert (await transport.send(FROM, "a@example.com", MESSAGE, then=then)).verdict is (
            Verdict.sent
        )
    finally:
        await transport.close()  # no QUIT into the open DATA: the connection is cut
    assert not transport.connection.is_connected
    assert not pipelining.sink.to("never@example.com")


async def test_an_address_the_fast_path_cannot_quote_takes_the_classic_exchange(
    server: FaultyServer,
) -> None:
    transport = transport_to(server.url)
    try:
        outcome = await transport.send(FROM, '"odd name"@example.com', MESSAGE)
        assert outcome.verdict is Verdict.sent, outcome
        assert session_of(transport) is None  # a classic connection, not taken over
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
