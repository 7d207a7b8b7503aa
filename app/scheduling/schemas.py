"""Payloads of the scheduling endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.issues.schemas import StoryRead


class ScheduleAt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(
        description="When to send, ISO-8601 with a UTC offset, e.g. 2026-12-07T09:00:00+01:00."
    )


class IssueSummary(BaseModel):
    id: int
    number: int
    subject: str
    status: str
    stories: int
    ready_at: datetime | None
    scheduled_at: datetime | None


class UpcomingStoryCreated(BaseModel):
    issue: IssueSummary
    issue_created: bool = Field(description="True when this call created the upcoming draft.")
    story: StoryRead


class TickTime(BaseModel):
    local: datetime = Field(description="In the newsletter's time zone, with its offset.")
    utc: datetime


class TickRecord(BaseModel):
    tick_at: datetime
    outcome: str
    issue_id: int | None
    detail: str | None


class ScheduleOverview(BaseModel):
    cron: str | None
    timezone: str
    auto_send_upcoming: bool
    grace_hours: float
    checked_through: datetime | None = Field(
        description="The latest tick the scheduler has settled."
    )
    next_ticks: list[TickTime]
    upcoming: IssueSummary | None = Field(
        description="The draft that collects stories (the newest draft)."
    )
    ready: list[IssueSummary] = Field(description="Ready issues, the next one first.")
    scheduled: list[IssueSummary] = Field(description="One-off schedules, earliest first.")
    recent_ticks: list[TickRecord]
