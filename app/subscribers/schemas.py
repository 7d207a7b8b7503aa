from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.kit.text import NonEmptyLine, SingleLine, check_single_line
from app.models import Subscriber, Subscription, SubscriptionStatus

MAX_ATTRIBUTES_JSON = 10_000


def check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """Attribute names are short single lines; the whole object stays small."""
    for key in value:
        if not key or len(key) > 100:
            raise ValueError("attribute names must be 1 to 100 characters")
        check_single_line(key)
    if len(json.dumps(value)) > MAX_ATTRIBUTES_JSON:
        raise ValueError(f"must be at most {MAX_ATTRIBUTES_JSON} characters as JSON")
    return value


class SubscriberAdd(BaseModel):
    """An editor adds one person; `consent` records how their consent was obtained."""

    model_config = ConfigDict(extra="forbid")

    email: SingleLine = Field(max_length=320)
    name: SingleLine = Field(default="", max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict)
    consent: NonEmptyLine = Field(max_length=2000)
    double_opt_in: bool = False

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_attributes(value)


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SingleLine | None = Field(default=None, max_length=200)
    attributes: dict[str, Any] | None = None
    status: Literal["active", "unsubscribed"] | None = None

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_attributes(value)


class SubscriptionRead(BaseModel):
    """One person's subscription to one newsletter, with the consent proof."""

    id: int
    subscriber_id: int
    email: str
    name: str
    attributes: dict[str, Any]
    status: SubscriptionStatus
    source: str
    created_at: datetime
    requested_at: datetime
    consent_text: str | None
    page: str | None
    ip: str | None
    user_agent: str | None
    confirmation_sent_at: datetime | None
    confirmed_at: datetime | None
    confirmed_ip: str | None
    confirmed_user_agent: str | None
    unsubscribed_at: datetime | None

    @classmethod
    def build(cls, subscription: Subscription, subscriber: Subscriber) -> SubscriptionRead:
        return cls(
            id=subscription.id,
            subscriber_id=subscriber.id,
            email=subscriber.email,
            name=subscriber.name,
            attributes=subscriber.attributes or {},
            status=SubscriptionStatus(subscription.status),
            source=subscription.source,
            created_at=subscription.created_at,
            requested_at=subscription.requested_at,
            consent_text=subscription.consent_text,
            page=subscription.page,
            ip=subscription.ip,
            user_agent=subscription.user_agent,
            confirmation_sent_at=subscription.confirmation_sent_at,
            confirmed_at=subscription.confirmed_at,
            confirmed_ip=subscription.confirmed_ip,
            confirmed_user_agent=subscription.confirmed_user_agent,
            unsubscribed_at=subscription.unsubscribed_at,
        )


class InvalidLine(BaseModel):
    line: int
    reason: str


class ImportResult(BaseModel):
    created: int
    updated: int
    skipped: int
    invalid: list[InvalidLine]
    invalid_count: int = Field(description="All invalid lines; `invalid` lists the first 1000.")
    rows: int = Field(description="Data rows read (blank lines not counted).")
