"""How a message leaves: the `Transport` protocol and its SMTP implementation.

A transport is one channel to the mail system (one SMTP connection for the SMTP
transport). It takes what a sender needs and nothing more (envelope sender, one
recipient, the finished message bytes) and answers a classified `Outcome`, never an
exception for anything the server or the network did, so the engine and the outbox
only ever decide on verdicts. The SMTP transport pipelines when the server lets it
(`pipeline.py`, SPEC section 13) behind the same two calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple, Protocol

import aiosmtplib

from app.delivery.classify import Outcome, Verdict, classify_exception
from app.delivery.smtp import SmtpConnection, SmtpUnavailable
from app.settings import Settings

logger = logging.getLogger("broadsheet.delivery")


class Outgoing(NamedTuple):
    """One message to one recipient, as it goes on the wire."""

    envelope_from: str
    recipient: str
    message: bytes


class Transport(Protocol):
    """Where the engine and the outbox hand a message over; the channel opens on demand."""

    async def send(
        self, envelope_from: str, recipient: str, message: bytes, *, then: Outgoing | None = None
    ) -> Outcome:
        """Offer one message to one recipient (opening the channel first if needed).

        `then`: the message the caller sends next on this channel, whatever this one's
        outcome. A transport may announce it along with this one (a pipelining SMTP
        session sends its envelope right behind this message's content); the next call
        must then be for exactly that message.
        """
        ...

    async def close(self) -> None:
        """Say goodbye politely and forget the channel; it may be opened again."""
        ...


TransportFactory = Callable[[], Transport]


class SmtpTransport:
    """One persistent SMTP connection (with failover) behind `Transport`: aiosmtplib's
    classic exchange, or the pipelined session when the server offers PIPELINING."""

    def __init__(self, connection: SmtpConnection) -> None:
        self.connection = connection

    async def send(
        self, envelope_from: str, recipient: str, message: bytes, *, then: Outgoing | None = None
    ) -> Outcome:
        connection = self.connection
        try:
            response = await connection.sendmail(envelope_from, recipient, message, then=then)
        except SmtpUnavailable as exc:
            return _unavailable(exc)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            outcome = classify_exception(exc)
            if outcome.closes_connection:
                connection.drop()
            return outcome
        except BaseException:
            # A bug (or a cancellation) mid-transaction: the session is in an unknown
            # state, so the next message gets a fresh one.
            connection.drop()
            raise
        return Outcome(Verdict.sent, response.code, response.message[:500])

    async def close(self) -> None:
        await self.connection.close()


def _unavailable(exc: SmtpUnavailable) -> Outcome:
    if exc.auth_refused is not None:
        refused = classify_exception(exc.auth_refused)
        return Outcome(refused.verdict, refused.code, refused.reply, before_send=True)
    return Outcome(Verdict.unreachable, None, f"SMTP unreachable: {exc}"[:500], before_send=True)


def smtp_transports(settings: Settings) -> TransportFactory:
    """A factory of SMTP transports to the configured servers, one connection each."""

    def make() -> Transport:
        return SmtpTransport(
            SmtpConnection(
                settings.smtp_targets,
                timeout=settings.smtp_timeout_seconds,
                local_hostname=settings.base_host,
                pipelining=settings.smtp_pipelining,
            )
        )

    return make
