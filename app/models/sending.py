"""What sending leaves behind: deliveries, events, the outbox, send and rate counters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, BigId, UTCDateTime
from app.models.base import check_in
from app.models.states import (
    DeliveryStatus,
    EventKind,
    OutboxStatus,
)


class Delivery(Base):
    """One issue to one subscription: the per-recipient outbox row (SPEC section 7).

    Written a whole list at a time (one INSERT .. SELECT per send), so every index and
    constraint here is paid once per recipient. Hence no foreign keys: PostgreSQL checks
    each one with a trigger per inserted row, which took half the time of enqueueing
    100,000 recipients. The references still hold by construction: an issue is deleted
    only before it has deliveries (draft or ready), a subscription's deliveries are
    deleted with it (subscribers.repository), and the claim skips a delivery whose
    subscription was deleted while the send was being enqueued.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscription_id"),
        Index("ix_delivery_issue_id_status", "issue_id", "status"),
        Index("ix_delivery_subscription_id", "subscription_id"),
        # Only the rows still waiting, in id order: a claim (and the sweep from the start
        # of the table) reads just these instead of walking every sent row. PostgreSQL
        # uses it once the table has been ANALYZEd (autovacuum does that).
        Index(
            "ix_delivery_queued_id",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # An issue's newest queued row, read backwards: "is anything of it left to claim?"
        # in one probe, however many of its rows were sent (migration 0010).
        Index(
            "ix_delivery_issue_id_queued",
            "issue_id",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # Only the rows in flight: leases to renew, and expired ones to take back.
        Index(
            "ix_delivery_sending_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        check_in("status", DeliveryStatus),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(BigId)
    subscription_id: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reply: Mapped[str | None] = mapped_column(Text)
    # Derived from the ids (the same on every retry), recorded with the outcome.
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_issue_id_kind", "issue_id", "kind"),
        Index("ix_event_delivery_id", "delivery_id"),
        # A subscriber's page lists a subscription's events; erasure deletes them.
        Index("ix_event_subscription_id", "subscription_id"),
        check_in("kind", EventKind),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"))
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscription.id", ondelete="SET NULL")
    )
    url: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """A single transactional email (confirmation, test send), stored as the bytes to send.

    Written in the same transaction as whatever caused it, so it cannot be lost; the
    worker sends it and keeps retrying while the SMTP server is down.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_message_status_next_attempt_at", "status", "next_attempt_at"),
        check_in("status", OutboxStatus),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    message_id: Mapped[str] = mapped_column(String(255))
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """The first answer to a request made with an `Idempotency-Key` header."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateCounter(Base):
    """Fixed-window counters shared by every API replica (subscribe limits)."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigId)
    count: Mapped[int] = mapped_column(Integer, default=0)


class SendQuota(Base):
    """A token bucket shared by every worker, so SEND_RATE holds for all of them together.

    One row per bucket: `global` and one per capped recipient domain.
    """

    __tablename__ = "send_quota"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, default=0)
    refilled_at: Mapped[float] = mapped_column(Float, server_default=text("0"))


class SendWarmup(Base):
    """WARMUP's count for one From domain, shared by every worker (SPEC section 13).

    `first_day` is the UTC day of the domain's first send, which picks the day's cap;
    `sent` counts the messages of the UTC day `day` and starts again on the next one.
    """

    __tablename__ = "send_warmup"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)
    day: Mapped[date] = mapped_column(Date)
    sent: Mapped[int] = mapped_column(Integer, default=0)
