"""Reply codes and RFC 3463 enhanced status codes to delivery verdicts."""

from __future__ import annotations

import aiosmtplib
import pytest

from app.delivery.classify import Verdict, classify_exception, classify_reply, enhanced_status


@pytest.mark.parametrize(
    ("code", "message", "stage", "verdict"),
    [
        (250, "2.0.0 OK queued", "data", Verdict.sent),
        (421, "4.7.0 try again later", "rcpt", Verdict.unreachable),
        (421, "4.3.2 shutting down", "mail", Verdict.unreachable),
        (450, "4.2.1 mailbox busy", "rcpt", Verdict.retry),
        (452, "4.2.2 mailbox full", "rcpt", Verdict.retry),
        (451, "local error", "data", Verdict.retry),
        (550, "5.1.1 no such user", "rcpt", Verdict.bounce),
        (553, "mailbox name not allowed", "rcpt", Verdict.bounce),
        (554, "5.6.0 message content rejected", "data", Verdict.bounce),
        (550, "5.7.1 relaying denied", "rcpt", Verdict.policy),
        (554, "5.7.26 DMARC policy", "data", Verdict.policy),
        (530, "authentication required", "mail", Verdict.policy),
        (535, "5.7.8 bad credentials", "mail", Verdict.policy),
        (550, "sender address rejected", "mail", Verdict.policy),
        (451, "4.7.1 greylisted", "rcpt", Verdict.retry),
    ],
)
def test_replies_are_classified_by_code_and_enhanced_status(
    code: int, message: str, stage: str, verdict: Verdict
) -> None:
    assert classify_reply(code, message, stage=stage) is verdict


def test_enhanced_status_is_read_only_from_the_start_of_the_reply() -> None:
    assert enhanced_status("5.1.1 <x@example.com>: unknown") == (5, 1, 1)
    assert enhanced_status("user 5.1.1 unknown") is None


def test_a_refused_recipient_is_a_bounce_and_a_refused_sender_is_policy() -> None:
    refused = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown", "x@example.com")]
    )
    outcome = classify_exception(refused)
    assert (outcome.verdict, outcome.code, outcome.reply) == (
        Verdict.bounce,
        550,
        "550 5.1.1 unknown",
    )
    sender = classify_exception(aiosmtplib.SMTPSenderRefused(553, "not allowed", "me@x"))
    assert sender.verdict is Verdict.policy


def test_dropped_connections_and_timeouts_are_transient() -> None:
    dropped = classify_exception(aiosmtplib.SMTPServerDisconnected("gone"))
    assert dropped.verdict is Verdict.retry
    assert dropped.closes_connection
    assert classify_exception(aiosmtplib.SMTPReadTimeoutError("slow")).verdict is Verdict.retry
    assert classify_exception(ConnectionResetError()).verdict is Verdict.retry


def test_a_server_that_cannot_be_reached_is_only_a_delay() -> None:
    outcome = classify_exception(aiosmtplib.SMTPConnectError("refused"))
    assert outcome.verdict is Verdict.unreachable
