"""Persistent aiosmtplib connections to the configured SMTP servers, with failover.

`SMTP_URL` may list several servers separated by commas: a connection tries them in
order and uses the first that answers, so a primary that is down fails over to the next.
Credentials never reach the logs: servers are described by scheme, host and port only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiosmtplib

from app.delivery.pipeline import Envelope, PipelinedSession
from app.settings import SmtpTarget

logger = logging.getLogger("broadsheet.smtp")


class SmtpUnavailable(Exception):
    """No configured SMTP server accepted a connection (or a login)."""

    def __init__(self, message: str, *, auth_refused: aiosmtplib.SMTPException | None = None):
        super().__init__(message)
        self.auth_refused = auth_refused


def data_payload(message: bytes) -> bytes | None:
    """The DATA payload (dot-stuffed, ending CRLF.CRLF) of a message that is clean CRLF.

    aiosmtplib's `data()` runs two regular expressions over every message (line endings,
    then dot-stuffing), most of the client's CPU for an issue. Our messages are built
    with CRLF line endings, so three C-speed counts prove it and one `bytes.replace`
    stuffs the dots. None when the message has a bare CR or LF: then aiosmtplib's own
    path (which fixes them) is used.
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        return None
    if not message.endswith(b"\r\n"):
        return None
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _has_protocol_internals(client: aiosmtplib.SMTP) -> bool:
    protocol = client.protocol
    return (
        protocol is not None
        and getattr(protocol, "_command_lock", None) is not None
        and hasattr(protocol, "_response_pending")
    )


async def _data_prepared(
    client: aiosmtplib.SMTP, payload: bytes, timeout: float
) -> aiosmtplib.SMTPResponse:
    """DATA with a ready payload: the same exchange as aiosmtplib's, minus the rescans.

    Mirrors `SMTPProtocol.execute_data_command` (aiosmtplib 3 to 5): under the command
    lock, mark a reply as expected, write, read the reply.
    """
    protocol: Any = client.protocol
    try:
        async with protocol._command_lock:
            protocol._response_pending = True
            protocol.write(b"DATA\r\n")
            start = await protocol.read_response(timeout=timeout)
            if start.code != 354:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            protocol._response_pending = True
            protocol.write(payload)
            response: aiosmtplib.SMTPResponse = await protocol.read_response(timeout=timeout)
            if response.code != 250:
                raise aiosmtplib.SMTPDataError(response.code, response.message)
            return response
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise


def _envelope(
    session: PipelinedSession, mail_from: str, rcpt_to: str, data: bytes
) -> Envelope | None:
    """The message for the fast path, or None when it must take the classic exchange."""
    payload = data_payload(data)
    if payload is None or not session.accepts(mail_from, rcpt_to):
        return None
    return Envelope(mail_from, rcpt_to, data, payload)


class SmtpConnection:
    """One persistent SMTP session, made (again) on demand."""

    def __init__(
        self,
        targets: Sequence[SmtpTarget],
        *,
        timeout: float,
        local_hostname: str | None = None,
        pipelining: bool = True,
    ) -> None:
        if not targets:
            raise ValueError("at least one SMTP target is required")
        self.targets = list(targets)
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.pipelining = pipelining
        self._client: aiosmtplib.SMTP | None = None
        # The pipelined session the client's connection was handed to, when the server
        # offers PIPELINING; `_client` then no longer reads that connection.
        self._session: PipelinedSession | None = None
        self.target: SmtpTarget | None = None

    @property
    def is_connected(self) -> bool:
        if self._session is not None:
            return self._session.is_connected
        return self._client is not None and self._client.is_connected

    async def _connect_one(self, target: SmtpTarget) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.implicit_tls,
            start_tls=target.starttls,
            validate_certs=target.validate_certs,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        await client.connect()
        return client

    async def connect(self, *, pipelined: bool = True) -> aiosmtplib.SMTP:
        """The live client, connecting to the first target that answers; `pipelined`:
        hand a new connection to a pipelined session when the server can take one."""
        if self._client is not None and self.is_connected:
            return self._client
        await self.close()
        errors: list[str] = []
        auth_refused: aiosmtplib.SMTPException | None = None
        for target in self.targets:
            try:
                client = await self._connect_one(target)
            except aiosmtplib.SMTPAuthenticationError as exc:
                auth_refused = exc
                errors.append(f"{target.describe()}: login refused ({exc.code})")
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                errors.append(f"{target.describe()}: {type(exc).__name__}: {exc}")
            else:
                if self.target is not None and target != self.target:
                    logger.warning("SMTP failover: now sending through %s", target.describe())
                self._client = client
                self.target = target
                if pipelined and self.pipelining:
                    await self._take_over(client)
                return client
        raise SmtpUnavailable("; ".join(errors), auth_refused=auth_refused)

    async def _take_over(self, client: aiosmtplib.SMTP) -> None:
        """Hand the connection to a pipelined session when the server can take one."""
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        self._session = PipelinedSession.take_over(client, timeout=self.timeout)

    async def sendmail(
        self,
        mail_from: str,
        rcpt_to: str,
        data: bytes,
        *,
        then: tuple[str, str, bytes] | None = None,
    ) -> aiosmtplib.SMTPResponse:
        """Send one message to one recipient; the server's reply to DATA (or BDAT).

        `then` (sender, recipient, message): the message of the next call, which a
        pipelined session announces behind this one's content.
        Raises aiosmtplib errors (see `classify.classify_exception`) or SmtpUnavailable.
        """
        client = await self.connect()
        session = self._session
        if session is not None:
            envelope = session.announced_for(mail_from, rcpt_to, data) or _envelope(
                session, mail_from, rcpt_to, data
            )
            if envelope is not None:
                upcoming = _envelope(session, *then) if then is not None else None
                return await session.send(envelope, then=upcoming)
            # A message or an address the fast path does not take: a classic exchange on
            # a new connection (rare: messages are built CRLF, addresses checked).
            await self.close()
            client = await self.connect(pipelined=False)
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        # The transaction by hand rather than `sendmail()`: our messages are already CRLF,
        # so the SIZE option is just their length (sendmail normalises the whole message
        # once more only to measure it), and addresses were validated at the door.
        options = [f"SIZE={len(data)}"] if client.supports_extension("size") else []
        try:
            await client.mail(mail_from, options=options)
            await client.rcpt(rcpt_to)
            payload = data_payload(data)
            if payload is not None and _has_protocol_internals(client):
                response = await _data_prepared(client, payload, self.timeout)
            else:
                response = await client.data(data)
        except aiosmtplib.SMTPResponseException:
            # Leave the session clean for the next message on this connection.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.rset()
            raise
        return response

    def drop(self) -> None:
        """Forget a connection that is broken or that the server asked us to close."""
        client, self._client = self._client, None
        session, self._session = self._session, None
        if session is not None:
            session.abort()
        elif client is not None:
            try:
                client.close()
            except Exception:  # a broken transport may fail to close; it is gone anyway
                logger.debug("closing a broken SMTP connection failed", exc_info=True)

    async def close(self) -> None:
        """QUIT politely when possible, then forget the connection."""
        client, self._client = self._client, None
        session, self._session = self._session, None
        if session is not None:
            await session.quit()
            return
        if client is None:
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(client.quit(), timeout=2)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            pass
        finally:
            try:
                client.close()
            except Exception:
                logger.debug("closing an SMTP connection failed", exc_info=True)
