"""The SMTP connection: the prepared DATA path must put exactly our bytes on the wire."""

from __future__ import annotations

from app.delivery.classify import Verdict
from app.delivery.smtp import SmtpConnection, data_payload
from app.delivery.transport import SmtpTransport
from app.settings import parse_smtp_url
from tests.delivery.faulty_smtp import FaultyServer


def test_data_payload_stuffs_leading_dots_and_ends_the_data() -> None:
    message = b".first\r\nmiddle\r\n..two\r\n.\r\nend\r\n"
    assert data_payload(message) == b"..first\r\nmiddle\r\n...two\r\n..\r\nend\r\n.\r\n"


def test_data_payload_leaves_messages_with_bare_line_endings_to_aiosmtplib() -> None:
    assert data_payload(b"a\nb\r\n") is None
    assert data_payload(b"a\rb\r\n") is None
    assert data_payload(b"no final newline") is None


async def test_messages_arrive_byte_for_byte_through_either_data_path(
    faulty: FaultyServer,
) -> None:
    transport = SmtpTransport(SmtpConnection([parse_smtp_url(faulty.url)], timeout=10))
    crlf = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n"
    bare = b"Subject: bare\n\n.leading dot\nlast\n"
    try:
        sent = await transport.send("a@example.org", "b@example.com", crlf)
        assert sent.verdict is Verdict.sent
        assert sent.reply.startswith("OK")
        again = await transport.send("a@example.org", "c@example.com", bare)
        assert again.verdict is Verdict.sent
    finally:
        await transport.close()
    assert faulty.sink.to("b@example.com")[0].data == crlf
    assert faulty.sink.to("c@example.com")[0].data == bare.replace(b"\n", b"\r\n")
