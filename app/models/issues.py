"""What editors write: issues and their stories, and the schedule's ticks."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
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
    IssueStatus,
    TickOutcome,
)

if TYPE_CHECKING:
    from app.models.audience import Newsletter


class Issue(TimestampMixin, Base):
    __tablename__ = "issue"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "number"),
        Index("ix_issue_status_scheduled_at", "status", "scheduled_at"),
        check_in("status", IssueStatus),
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


class ScheduleTick(Base):
    """One cron tick of one newsletter, settled once: the unique row is the lock."""

    __tablename__ = "schedule_tick"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "tick_at"),
        check_in("outcome", TickOutcome),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    tick_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="SET NULL"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
