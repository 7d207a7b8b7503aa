"""What an SMTP outcome means for a delivery: by reply code and RFC 3463 enhanced status.

The rules (SPEC section 7):
- 2xx: sent.
- 4xx, a dropped connection or a timeout in the middle of a transaction: transient,
  retried later with backoff and counted as an attempt.
- 5xx to the recipient (RCPT, or DATA for a single-recipient transaction): a hard bounce.
- 5.7.x (policy, authentication) and the bare 530/534/535/538 auth codes, and any
  refusal of our own MAIL FROM: the sender's fault. The recipient is not blamed and the
  attempt is not counted; a run of them pauses the send.
- The server cannot be reached at all, or answers 421 (it is closing the channel: the
  service, not the recipient, is unavailable): only a delay, no attempt used.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_AUTH_CODES = frozenset({530, 534, 535, 538})


class Verdict(StrEnum):
    sent = "sent"
    retry = "retry"  # transient: counts an attempt
    bounce = "bounce"  # permanent, the recipient's address
    policy = "policy"  # the sender's fault: no attempt, no blame
    unreachable = "unreachable"  # no SMTP server answered, or 421: no attempt


@dataclass(frozen=True, slots=True)
class Outcome:
    """A classified answer to one send. `before_send`: no transaction was started
    (no server answered, or it refused our login), so the reply says nothing about
    the message or its recipient."""

    verdict: Verdict
    code: int | None
    reply: str
    before_send: bool = False

    @property
    def closes_connection(self) -> bool:
        """After this outcome the connection should be dropped and made again."""
        return self.code is None or self.code == 421


def enhanced_status(message: str) -> tuple[int, int, int] | None:
    """The RFC 3463 `class.subject.detail` at the start of a reply text, if any."""
    match = _ENHANCED.match(message)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def classify_reply(code: int, message: str, *, stage: str = "rcpt") -> Verdict:
    """The verdict for one SMTP reply; `stage` is `mail`, `rcpt` or `data`."""
    if 200 <= code < 300:
        return Verdict.sent
    if code == 421:
        # RFC 5321 4.2.3: the server is shutting the session. Counting it against every
        # recipient in the queue would fail a whole send through a few seconds of it.
        return Verdict.unreachable
    status = enhanced_status(message)
    if code in _AUTH_CODES or (status is not None and status[0] == 5 and status[1] == 7):
        return Verdict.policy
    if 400 <= code < 500:
        return Verdict.retry
    if 500 <= code < 600:
        # A refusal of our own envelope sender says nothing about the recipient.
        return Verdict.policy if stage == "mail" else Verdict.bounce
    # Anything else is a broken conversation: try again later.
    return Verdict.retry


def _reply_text(code: int, message: str) -> str:
    return f"{code} {message}".strip()[:1000]


def classify_exception(exc: BaseException) -> Outcome:
    """The outcome of a failed `sendmail()` (or connect) for a single recipient."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        if first is None:
            return Outcome(Verdict.retry, None, "recipient refused")
        return Outcome(
            classify_reply(first.code, first.message, stage="rcpt"),
            first.code,
            _reply_text(first.code, first.message),
        )
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPConnectTimeoutError):
        return Outcome(Verdict.unreachable, None, f"cannot connect: {exc}"[:1000])
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Outcome(Verdict.policy, exc.code, _reply_text(exc.code, exc.message))
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            stage = "mail"
        elif isinstance(exc, aiosmtplib.SMTPRecipientRefused):
            stage = "rcpt"
        else:
            stage = "data"
        verdict = classify_reply(exc.code, exc.message, stage=stage)
        return Outcome(verdict, exc.code, _reply_text(exc.code, exc.message))
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return Outcome(Verdict.retry, None, f"connection dropped: {exc}"[:1000])
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        return Outcome(Verdict.retry, None, "timed out waiting for the SMTP server")
    if isinstance(exc, ssl.SSLError | OSError):
        return Outcome(Verdict.retry, None, f"connection error: {exc}"[:1000])
    if isinstance(exc, aiosmtplib.SMTPException):
        return Outcome(Verdict.retry, None, f"SMTP error: {exc}"[:1000])
    raise exc
