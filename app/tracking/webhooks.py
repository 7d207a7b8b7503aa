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
import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError

from app.kit.clock import utcnow
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import BadRequest, Invalid, Unauthorized
from app.subscribers.bounces import BounceKind
from app.tracking import service
from app.tracking.reports import Report, parse_report, parse_ses

logger = logging.getLogger("broadsheet.webhooks")

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class GenericBounce(BaseModel):
    email: str = Field(max_length=320)
    kind: BounceKind
    diagnostic: str | None = Field(default=None, max_length=2000)
    message_id: str | None = Field(default=None, max_length=998)


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
    outcome = await service.record_reports(session, reports, utcnow())
    return {"recorded": outcome.recorded, "suppressed": outcome.suppressed}


def _invalid(errors: list[dict[str, Any]]) -> Invalid:
    exc = Invalid((), "invalid bounce")
    exc.detail = errors
    return exc
