"""Every table of Broadsheet, in one metadata (SPEC section 2).

States are short strings guarded by CHECK constraints rather than database enums, so
that the same migrations run on SQLite and PostgreSQL and adding a state is a plain
constraint change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.kit.clock import utcnow
from app.kit.db import Base, BigId, UTCDateTime


class SubscriptionStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class IssueStatus(StrEnum):
    draft = "draft"
    ready = "ready"
    scheduled = "scheduled"
    sending = "sending"
    paused = "paused"
    sent = "sent"
    cancelled = "cancelled"


class DeliveryStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    bounced = "bounced"
    skipped = "skipped"
    cancelled = "cancelled"


class OutboxStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class EventKind(StrEnum):
    open = "open"
    click = "click"
    bounce = "bounce"
    soft_bounce = "soft_bounce"
    complaint = "complaint"
    unsubscribe = "unsubscribe"


class Role(StrEnum):
    admin = "admin"
    editor = "editor"


class SuppressionReason(StrEnum):
    hard_bounce = "hard_bounce"
    soft_bounces = "soft_bounces"
    complaint = "complaint"
    erasure = "erasure"
    manual = "manual"


class TickOutcome(StrEnum):
    sent = "sent"
    skipped = "skipped"
    missed = "missed"


def _check_in(column: str, enum_cls: type[StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum_cls)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_valid")


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class Newsletter(TimestampMixin, Base):
    __tablename__ = "newsletter"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(200))
    from_email: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    postal_address: Mapped[str] = mapped_column(Text, default="")
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    schedule_cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    auto_send_upcoming: Mapped[bool] = mapped_column(Boolean, default=False)
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=False)
    template: Mapped[str] = mapped_column(String(64), default="default")
    # The last cron tick the scheduler has settled (sent, skipped or missed); the next
    # pass starts from here, so a tick is looked at once however many passes race.
    schedule_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Subscriber(TimestampMixin, Base):
    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", lazy="raise", passive_deletes=True
    )


class Subscription(TimestampMixin, Base):
    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "subscriber_id"),
        # Enqueue and list both walk one newsletter's subscriptions of one status by id.
        Index("ix_subscription_newsletter_status_id", "newsletter_id", "status", "id"),
        Index("ix_subscription_subscriber_id", "subscriber_id"),
        _check_in("status", SubscriptionStatus),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=SubscriptionStatus.pending.value)
    # Consent proof.
    source: Mapped[str] = mapped_column(String(16), default="api")
    page: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    consent_text: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_ip: Mapped[str | None] = mapped_column(String(64))
    confirmed_user_agent: Mapped[str | None] = mapped_column(Text)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Consecutive soft bounces; three in a row suppress the address (SPEC section 7).
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions", lazy="raise")
    newsletter: Mapped[Newsletter] = relationship(lazy="raise")


class Suppression(Base):
    __tablename__ = "suppression"
    __table_args__ = (_check_in("reason", SuppressionReason),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Issue(TimestampMixin, Base):
    __tablename__ = "issue"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "number"),
        Index("ix_issue_status_scheduled_at", "status", "scheduled_at"),
        _check_in("status", IssueStatus),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    intro: Mapped[str] = mapped_column(Text, default="")
    outro: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=IssueStatus.draft.value)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Frozen when sending starts: what every subscriber gets, prepared for personalising.
    rendered_html: Mapped[str | None] = mapped_column(Text)
    rendered_text: Mapped[str | None] = mapped_column(Text)
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # Consecutive 5.7.x refusals; a run of them pauses the send (the sender's fault).
    policy_refusals: Mapped[int] = mapped_column(Integer, default=0)

    newsletter: Mapped[Newsletter] = relationship(lazy="raise")
    stories: Mapped[list[Story]] = relationship(
        back_populates="issue", lazy="raise", order_by="Story.position", passive_deletes=True
    )


class Story(Base):
    __tablename__ = "story"
    __table_args__ = (UniqueConstraint("issue_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    image_url: Mapped[str | None] = mapped_column(Text)
    image_alt: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    issue: Mapped[Issue] = relationship(back_populates="stories", lazy="raise")


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
        # Only the rows in flight: leases to renew, and expired ones to take back.
        Index(
            "ix_delivery_sending_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        _check_in("status", DeliveryStatus),
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
        _check_in("kind", EventKind),
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


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (_check_in("role", Role),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """A single transactional email (confirmation, test send), stored as the bytes to send.

    Written in the same transaction as whatever caused it, so it cannot be lost; the
    worker sends it and keeps retrying while the SMTP server is down.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_message_status_next_attempt_at", "status", "next_attempt_at"),
        _check_in("status", OutboxStatus),
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


class ScheduleTick(Base):
    """One cron tick of one newsletter, settled once: the unique row is the lock."""

    __tablename__ = "schedule_tick"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "tick_at"),
        _check_in("outcome", TickOutcome),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    tick_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="SET NULL"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Installation(Base):
    """This installation's id, one row made by the migrations (SPEC section 6).

    Every delivery's Message-ID carries a part derived from it, so two installations
    with the same BASE_URL never send the same Message-ID. Not the secret key: that
    rotates, and the development key is the same in every dev install.
    """

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)
    ONLY: ClassVar[int] = 1

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[str] = mapped_column(String(32))
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
