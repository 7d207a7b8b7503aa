"""Bounces and complaints that arrive after the SMTP conversation: POST /api/v1/webhooks/bounces.

One endpoint takes three formats:
- generic JSON `{email, kind: hard|soft|complaint, diagnostic?, message_id?}`;
- Amazon SES notifications delivered by SNS (`x-amz-sns-message-type` header, or a JSON
  body with `Type`): a `SubscriptionConfirmation` is logged with its SubscribeURL and
  answered 200 (Broadsheet makes no outbound request: the operator opens the URL once,
  see the README); a `Notification` whose Message is an SES Bounce (Permanent -> hard,
  Transient or Undetermined -> soft) or Complaint;
- a raw RFC 3464 delivery-status report or RFC 5965 (ARF) complaint posted as
  `message/rfc822` (or directly as `multipart/report`).

Authentication: `Authorization: Bearer <WEBHOOK_SECRET>`. SNS cannot send a bearer
token, so HTTP Basic with the secret as the password (put `https://sns:SECRET@host/...`
in the SNS subscription) is accepted too. Compared in constant time; 401 otherwise,
also when no secret is configured.

Hard bounces and complaints suppress the address; every report is recorded as an
event; a Message-ID maps the report back to its delivery and issue.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hmac
import json
import logging
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from app.delivery import repository
from app.kit.addresses import AddressError, normalise_email
from app.kit.clock import utcnow
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import BadRequest, Invalid, Unauthorized
from app.models import Delivery, Subscriber, Subscription
from app.subscribers.bounces import BounceKind, record_bounce

logger = logging.getLogger("broadsheet.webhooks")

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

# <d{delivery}.i{issue}.{installation tag}@host>, and the older form without the tag.
_OUR_MESSAGE_ID = re.compile(r"^<?d(\d+)\.i(\d+)(?:\.[a-z2-7]{10})?@[^>]*>?$")
_ADDRESS_FIELD = re.compile(r"^\s*(?:[A-Za-z0-9-]+\s*;\s*)?<?([^<>\s;]+@[^<>\s;]+?)>?\s*$")


class GenericBounce(BaseModel):
    email: str = Field(max_length=320)
    kind: BounceKind
    diagnostic: str | None = Field(default=None, max_length=2000)
    message_id: str | None = Field(default=None, max_length=998)


@dataclass
class Report:
    email: str | None
    kind: BounceKind
    diagnostic: str | None
    message_id: str | None


def _authenticate(request: Request, secret: str | None) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    presented: str | None = None
    if scheme.lower() == "bearer":
        presented = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        presented = decoded.partition(":")[2] if ":" in decoded else None
    if (
        not secret
        or presented is None
        or not hmac.compare_digest(presented.encode(), secret.encode())
    ):
        raise Unauthorized("missing or invalid webhook secret")


@router.post("/bounces")
async def bounce_webhook(
    request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Record bounces and complaints reported later (JSON, SES via SNS, RFC 3464/5965)."""
    _authenticate(request, settings.webhook_secret)
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sns_type = request.headers.get("x-amz-sns-message-type")
    if content_type in ("message/rfc822", "multipart/report"):
        reports = parse_report(body, content_type)
    else:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(
                "expected JSON, an SNS notification or a message/rfc822 report"
            ) from exc
        if not isinstance(data, dict):
            raise Invalid((), "expected a JSON object")
        if sns_type or "Type" in data:
            kind = sns_type or str(data.get("Type"))
            if kind == "SubscriptionConfirmation":
                url = str(data.get("SubscribeURL", ""))
                logger.warning(
                    "SNS subscription confirmation for topic %s: open this URL once to "
                    "confirm it: %s",
                    data.get("TopicArn"),
                    url,
                )
                return {"status": "subscription confirmation received", "subscribe_url": url}
            if kind == "UnsubscribeConfirmation":
                return {"status": "ignored"}
            if kind != "Notification":
                raise Invalid(("Type",), f"unsupported SNS message type {kind!r}")
            reports = parse_ses(data.get("Message"))
        else:
            try:
                generic = GenericBounce.model_validate(data)
            except ValidationError as exc:
                errors = [
                    {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors()
                ]
                raise _invalid(errors) from None
            reports = [Report(generic.email, generic.kind, generic.diagnostic, generic.message_id)]
    recorded = 0
    suppressed = 0
    now = utcnow()
    for report in reports:
        target = await _resolve(session, report)
        if target is None:
            continue
        address, issue_id, delivery_id, subscription_id = target
        if await record_bounce(
            session,
            email=address,
            kind=report.kind,
            detail=report.diagnostic,
            now=now,
            issue_id=issue_id,
            delivery_id=delivery_id,
            subscription_id=subscription_id,
        ):
            suppressed += 1
        recorded += 1
    return {"recorded": recorded, "suppressed": suppressed}


def _invalid(errors: list[dict[str, Any]]) -> Invalid:
    exc = Invalid((), "invalid bounce")
    exc.detail = errors
    return exc


async def _resolve(
    session: Any, report: Report
) -> tuple[str, int | None, int | None, int | None] | None:
    """(address, issue, delivery, subscription) for a report; None when nothing matches."""
    delivery = None
    if report.message_id:
        delivery = await _delivery_for(session, report.message_id.strip())
    if delivery is not None:
        delivery_id, issue_id, subscription_id = delivery
        address = (
            await session.execute(
                select(Subscriber.email)
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .where(Subscription.id == subscription_id)
            )
        ).scalar_one_or_none()
        if address is not None:
            return address, issue_id, delivery_id, subscription_id
    if not report.email:
        return None
    try:
        address = normalise_email(report.email, allow_utf8_local=True)
    except AddressError:
        raise Invalid(("email",), "not a valid email address") from None
    return address, None, None, None


async def _delivery_for(session: Any, message_id: str) -> tuple[int, int, int] | None:
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    match = _OUR_MESSAGE_ID.match(message_id)
    if match and int(match.group(1)) < 2**63:
        row = (
            await session.execute(
                select(Delivery.id, Delivery.issue_id, Delivery.subscription_id).where(
                    Delivery.id == int(match.group(1))
                )
            )
        ).first()
        if row is not None:
            return int(row[0]), int(row[1]), int(row[2])
    row = await repository.delivery_by_message_id(session, message_id)
    return (int(row[0]), int(row[1]), int(row[2])) if row is not None else None


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
