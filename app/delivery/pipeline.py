"""The fast path of an SMTP session: pipelining (RFC 2920) and chunking (RFC 3030).

aiosmtplib connects, says EHLO, starts TLS and logs in; when the server then offers
PIPELINING, the session's transport is handed to a `PipelinedSession`, which sends each
message's MAIL, RCPT and DATA in one write and reads the three replies together. With
CHUNKING as well, `BDAT <size> LAST` and the message go in that same write, so a message
costs one round trip instead of four. aiosmtplib's own protocol cannot take that: it
parses one reply per packet and drops what arrives while a parsed reply waits, so the
session reads replies with its own small protocol. Only public asyncio calls touch
aiosmtplib's connection (`transport.set_protocol`), and every reply is still checked
in order and raised as the same aiosmtplib exception the classic exchange raises, so
`classify.classify_exception` decides on both paths alike.
"""

from __future__ import annotations

import asyncio
import collections
import re
from dataclasses import dataclass
from typing import cast

import aiosmtplib

__all__ = ["Envelope", "PipelinedSession", "ReplyReader"]

MAX_REPLY_BYTES = 64 * 1024
# An address that may go on a command line as is: printable ASCII without spaces or angle
# brackets (others take the classic exchange, which quotes or refuses them as always).
_PLAIN_ADDRESS = re.compile(r"[!-;=?-~]+")


class ReplyReader(asyncio.Protocol):
    """Parses every complete SMTP reply as it arrives and queues it, in order."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.replies: collections.deque[aiosmtplib.SMTPResponse] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0
        self.lost: Exception | None = None
        self.paused = False
        self.resumed: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer.extend(data)
        start = 0
        code = -1
        lines: list[str] = []
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start : end + 1])
            start = end + 1
            try:
                code = int(line[:3])
            except ValueError:
                self._fail(aiosmtplib.SMTPResponseException(-1, f"malformed reply: {line!r}"))
                return
            lines.append(line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape"))
            if line[3:4] != b"-":
                self.replies.append(aiosmtplib.SMTPResponse(code, "\n".join(lines)))
                lines = []
                del buffer[:start]
                start = 0
        if len(buffer) > MAX_REPLY_BYTES:
            self._fail(aiosmtplib.SMTPResponseException(-1, "reply too long"))
            return
        self._wake()

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        error = aiosmtplib.SMTPServerDisconnected("connection lost")
        error.__cause__ = exc
        self._fail(error)
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and len(self.replies) >= self.wanted and not waiter.done():
            waiter.set_result(None)

    async def collect(self, count: int, timeout: float) -> list[aiosmtplib.SMTPResponse]:
        """The next `count` replies; fewer only when the connection was lost first."""
        replies = self.replies
        if len(replies) < count and self.lost is None:
            waiter = asyncio.get_running_loop().create_future()
            self.waiter, self.wanted = waiter, count
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for the server") from None
            finally:
                self.waiter = None
        return [replies.popleft() for _ in range(min(count, len(replies)))]

    async def drain(self) -> None:
        while self.paused and self.lost is None:
            self.resumed = asyncio.get_running_loop().create_future()
            await self.resumed


def _nth(replies: list[aiosmtplib.SMTPResponse], index: int) -> aiosmtplib.SMTPResponse:
    if index >= len(replies):
        raise aiosmtplib.SMTPServerDisconnected("connection lost before the server replied")
    return replies[index]


def _accepted(replies: list[aiosmtplib.SMTPResponse], *, chunking: bool) -> bool:
    mail, rcpt, last = replies
    return mail.code == 250 and rcpt.code in (250, 251) and last.code == (250 if chunking else 354)


def _refusal(
    replies: list[aiosmtplib.SMTPResponse], mail_from: str, rcpt_to: str
) -> aiosmtplib.SMTPException:
    """The first failure, in order: what the classic exchange would have raised.

    A server that answers 421 may hang up at once, so later replies can be missing.
    """
    mail = _nth(replies, 0)
    if mail.code != 250:
        return aiosmtplib.SMTPSenderRefused(mail.code, mail.message, mail_from)
    rcpt = _nth(replies, 1)
    if rcpt.code not in (250, 251):
        return aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, rcpt_to)
    last = _nth(replies, 2)
    return aiosmtplib.SMTPDataError(last.code, last.message)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on the fast path: `message` as is for BDAT, `payload` (dot-stuffed,
    ending CRLF.CRLF) for DATA."""

    mail_from: str
    rcpt_to: str
    message: bytes
    payload: bytes

    def is_for(self, mail_from: str, rcpt_to: str, message: bytes) -> bool:
        """The same message (the bytes object itself, not a copy) to the same recipient."""
        return self.message is message and self.rcpt_to == rcpt_to and self.mail_from == mail_from


class PipelinedSession:
    """One SMTP session, taken over from aiosmtplib after EHLO (and STARTTLS, AUTH)."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        *,
        chunking: bool,
        size: bool,
        timeout: float,
    ) -> None:
        self.transport = transport
        self.reader = ReplyReader()
        self.chunking = chunking
        self.size = size
        self.timeout = timeout
        self.reset_pending = False
        # A message announced with the last one's content: its envelope's replies, read.
        self.announced: tuple[Envelope, list[aiosmtplib.SMTPResponse]] | None = None
        transport.set_protocol(self.reader)

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP, *, timeout: float) -> PipelinedSession | None:
        """The session on `client`'s connection, or None when the server cannot pipeline."""
        protocol = client.protocol
        transport = getattr(protocol, "transport", None)
        # Duck-typed: uvloop's transports (the worker's loop) are not asyncio's classes.
        if (
            not client.supports_extension("pipelining")
            or transport is None
            or not all(hasattr(transport, name) for name in ("set_protocol", "write", "abort"))
        ):
            return None
        if getattr(protocol, "_buffer", b""):
            return None  # unread bytes from the server: leave this session to aiosmtplib
        return cls(
            cast(asyncio.WriteTransport, transport),
            chunking=client.supports_extension("chunking"),
            size=client.supports_extension("size"),
            timeout=timeout,
        )

    @staticmethod
    def accepts(mail_from: str, rcpt_to: str) -> bool:
        """Whether both addresses can go on the wire without aiosmtplib's quoting."""
        plain = _PLAIN_ADDRESS.fullmatch
        return plain(mail_from) is not None and plain(rcpt_to) is not None

    @property
    def is_connected(self) -> bool:
        return self.reader.lost is None and not self.transport.is_closing()

    async def send(
        self, envelope: Envelope, *, then: Envelope | None = None
    ) -> aiosmtplib.SMTPResponse:
        """One message; `then`, the message of the next call, is announced behind its
        content (DATA path: that envelope and its DATA go in the same write, so each
        message costs one round trip; the next call must be for exactly `then`)."""
        reader = self.reader
        if reader.lost is not None:
            raise reader.lost
        announced, self.announced = self.announced, None
        if announced is not None and not announced[0].is_for(
            envelope.mail_from, envelope.rcpt_to, envelope.message
        ):
            # What was announced did not follow: its DATA is open on the server, and only
            # closing the connection ends it without delivering anything.
            self.abort()
            raise aiosmtplib.SMTPServerDisconnected("the announced message did not follow")
        if announced is not None:
            replies = announced[1]
        else:
            head, extra = self._head(envelope)
            if self.chunking:
                body = b"BDAT %d LAST\r\n" % len(envelope.message)
                self.transport.write(b"".join((head, body, envelope.message)))
            else:
                self.transport.write(head + b"DATA\r\n")
            await reader.drain()
            replies = self._after_reset(await reader.collect(extra + 3, self.timeout), extra)
        if len(replies) == 3 and _accepted(replies, chunking=self.chunking):
            if self.chunking:
                return self._finished(replies[2])
            return await self._content(envelope, then)
        if not self.chunking and len(replies) == 3 and replies[2].code == 354:
            # The server opened DATA although the envelope failed: end it with no content.
            self.transport.write(b".\r\n")
            await reader.collect(1, self.timeout)
        self.reset_pending = True
        raise _refusal(replies, envelope.mail_from, envelope.rcpt_to)

    async def _content(self, envelope: Envelope, then: Envelope | None) -> aiosmtplib.SMTPResponse:
        """Write the content (and announce `then`); the final reply to the content."""
        reader = self.reader
        if then is None:
            self.transport.write(envelope.payload)
            await reader.drain()
            return self._finished(_nth(await reader.collect(1, self.timeout), 0))
        head, extra = self._head(then)
        self.transport.write(b"".join((envelope.payload, head, b"DATA\r\n")))
        await reader.drain()
        replies = await reader.collect(1 + extra + 3, self.timeout)
        final = _nth(replies, 0)
        try:
            self.announced = (then, self._after_reset(replies[1:], extra))
        except aiosmtplib.SMTPException:
            self.abort()  # a 421 to the RSET: the server is closing
        return self._finished(final)

    def announced_for(self, mail_from: str, rcpt_to: str, message: bytes) -> Envelope | None:
        """The envelope announced with the last message, if it is this one."""
        announced = self.announced
        if announced is not None and announced[0].is_for(mail_from, rcpt_to, message):
            return announced[0]
        return None

    def _head(self, envelope: Envelope) -> tuple[bytes, int]:
        """MAIL and RCPT (after an RSET when the last transaction failed); the replies the
        RSET adds."""
        size = f" SIZE={len(envelope.message)}" if self.size else ""
        head = f"MAIL FROM:<{envelope.mail_from}>{size}\r\nRCPT TO:<{envelope.rcpt_to}>\r\n"
        if self.reset_pending:
            self.reset_pending = False
            return b"RSET\r\n" + head.encode("ascii"), 1
        return head.encode("ascii"), 0

    @staticmethod
    def _after_reset(
        replies: list[aiosmtplib.SMTPResponse], extra: int
    ) -> list[aiosmtplib.SMTPResponse]:
        if extra:
            reset = _nth(replies, 0)
            if reset.code == 421:
                raise aiosmtplib.SMTPResponseException(reset.code, reset.message)
            return replies[1:]
        return replies

    def _finished(self, reply: aiosmtplib.SMTPResponse) -> aiosmtplib.SMTPResponse:
        # A refused content ends the transaction as an accepted one does: no RSET needed.
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply

    def abort(self) -> None:
        self.transport.abort()

    async def quit(self) -> None:
        """QUIT politely (a short wait at most), then close; with a message announced, its
        DATA is open, so the connection is closed without a word (delivering nothing)."""
        if self.announced is not None:
            self.abort()
            return
        try:
            if self.is_connected:
                self.transport.write(b"QUIT\r\n")
                await self.reader.collect(1, min(self.timeout, 2.0))
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self.transport.close()
