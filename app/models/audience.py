"""Readers and their consent: newsletters, subscribers, subscriptions, the suppression list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.kit.clock import utcnow
from app.kit.db import Base, BigId, UTCDateTime
from app.models.base import TimestampMixin, check_in
from app.models.states import (
    SubscriptionStatus,
    SuppressionReason,
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
    # Substring search (`ILIKE '%part%'`) by trigrams: PostgreSQL only (pg_trgm, migration
    # 0007); SQLite scans. tests/test_migrations.py compares them on PostgreSQL only.
    __table_args__ = tuple(
        Index(
            f"ix_subscriber_{column}_trgm",
            column,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql")
        for column in ("email", "name")
    )

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
        check_in("status", SubscriptionStatus),
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
    __table_args__ = (check_in("reason", SuppressionReason),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriptionCount(Base):
    """Signed deltas of a newsletter's subscriptions per status; a count is their SUM.

    Written only by database triggers on `subscription` (migration 0008: statement-level
    with transition tables on PostgreSQL, row-level on SQLite), so every path that
    changes a subscription keeps the counts exact. The triggers are not declared here:
    the models describe tables, the migration owns the triggers. Rows are only appended,
    never updated (no hot row for concurrent signups), and folded into one row per
    status by app/subscribers/count_repository.py.
    """

    __tablename__ = "subscription_count"
    __table_args__ = (Index("ix_subscription_count_newsletter_id", "newsletter_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(BigInteger)
