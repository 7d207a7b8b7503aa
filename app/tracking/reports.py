"""Bounce and complaint reports as they arrive, parsed into `Report`s (no database here).

Three shapes: an Amazon SES notification (delivered by SNS), an RFC 3464 delivery-status
report and an RFC 5965 (ARF) feedback report, the last two as whole `message/rfc822`
messages. The webhook uses these parsers; so can any other way reports come home (a
bounce mailbox, an inbound SMTP server).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from app.kit.errors import BadRequest, Invalid
from app.subscribers.bounces import BounceKind

_ADDRESS_FIELD = re.compile(r"^\s*(?:[A-Za-z0-9-]+\s*;\s*)?<?([^<>\s;]+@[^<>\s;]+?)>?\s*$")


@dataclass(frozen=True)
class Report:
    """One recipient's bounce or complaint, with what identifies the message if known."""

    email: str | None
    kind: BounceKind
    diagnostic: str | None
    message_id: str | None


# -- Amazon SES via SNS ---------------------------------------------------------------------


def parse_ses(message: Any) -> list[Report]:
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError:
            raise Invalid(("Message",), "the SNS Message is not JSON") from None
    if not isinstance(message, dict):
        raise Invalid(("Message",), "the SNS Message is not a JSON object")
    kind = message.get("notificationType") or message.get("eventType")
    mail = message.get("mail") or {}
    message_id = _ses_message_id(mail)
    reports: list[Report] = []
    if kind == "Bounce":
        bounce = message.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        for recipient in bounce.get("bouncedRecipients") or []:
            diagnostic = recipient.get("diagnosticCode") or recipient.get("status")
            reports.append(
                Report(
                    recipient.get("emailAddress"),
                    BounceKind.hard if hard else BounceKind.soft,
                    f"SES {bounce.get('bounceType')}/{bounce.get('bounceSubType')}: {diagnostic}",
                    message_id,
                )
            )
    elif kind == "Complaint":
        complaint = message.get("complaint") or {}
        for recipient in complaint.get("complainedRecipients") or []:
            reports.append(
                Report(
                    recipient.get("emailAddress"),
                    BounceKind.complaint,
                    f"SES complaint: {complaint.get('complaintFeedbackType') or 'unspecified'}",
                    message_id,
                )
            )
    return reports


def _ses_message_id(mail: dict[str, Any]) -> str | None:
    common = mail.get("commonHeaders") or {}
    if common.get("messageId"):
        return str(common["messageId"])
    for header in mail.get("headers") or []:
        if str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value"))
    return None


# -- RFC 3464 delivery-status and RFC 5965 feedback reports ---------------------------------


def parse_report(body: bytes, content_type: str) -> list[Report]:
    if content_type == "multipart/report":
        raise BadRequest("post the report as message/rfc822 (the whole message with headers)")
    message = email.message_from_bytes(body, policy=email.policy.compat32)
    report_type = message.get_content_type()
    if report_type != "multipart/report" or not message.is_multipart():
        raise BadRequest("not a multipart/report message (RFC 3464 or RFC 5965)")
    parts = list(message.walk())
    original_id = _original_message_id(parts)
    reports: list[Report] = []
    for part in parts:
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            reports.extend(_delivery_status(part, original_id))
        elif ctype == "message/feedback-report":
            reports.extend(_feedback_report(part, parts, original_id))
    if not reports:
        raise BadRequest("the report names no failed recipient")
    return reports


def _field_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [email.message_from_string(chunk) for chunk in re.split(r"\r?\n\r?\n", text) if chunk]


def _address(value: str | None) -> str | None:
    if not value:
        return None
    match = _ADDRESS_FIELD.match(str(value))
    return match.group(1) if match else None


def _delivery_status(part: Message, original_id: str | None) -> list[Report]:
    reports = []
    blocks = _field_blocks(part)
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        action = str(block.get("Action", "")).strip().lower()
        status = str(block.get("Status", "")).strip()
        if action != "failed" and not status.startswith("5."):
            continue  # delayed, delivered, relayed, expanded: not a bounce
        address = _address(block.get("Final-Recipient")) or _address(
            block.get("Original-Recipient")
        )
        kind = BounceKind.hard if status.startswith("5.") else BounceKind.soft
        diagnostic = str(block.get("Diagnostic-Code") or "").strip()
        reports.append(
            Report(
                address,
                kind,
                f"DSN {action} {status} {diagnostic}".strip(),
                original_id or _clean(block.get("Original-Message-ID")),
            )
        )
    return reports


def _feedback_report(part: Message, parts: list[Message], original_id: str | None) -> list[Report]:
    fields: Message = _field_blocks(part)[0] if _field_blocks(part) else Message()
    address = _address(fields.get("Original-Rcpt-To"))
    if address is None:
        for other in parts:
            if other.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
                headers = _embedded(other)
                address = _address(headers.get("To")) if headers is not None else None
                break
    feedback = str(fields.get("Feedback-Type", "abuse")).strip()
    return [
        Report(
            address,
            BounceKind.complaint,
            f"ARF complaint: {feedback}",
            original_id or _clean(fields.get("Original-Message-ID")),
        )
    ]


def _embedded(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return email.message_from_string(payload)
    return None


def _original_message_id(parts: list[Message]) -> str | None:
    for part in parts:
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            headers = _embedded(part)
            if headers is not None and headers.get("Message-ID"):
                return _clean(headers.get("Message-ID"))
    return None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None
