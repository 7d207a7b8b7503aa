"""Payloads of the scheduling endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from app.kit.text import MultiLine, NonEmptyLine, SingleLine, check_single_line


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    value = check_single_line(value)
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


HttpUrl = Annotated[str | None, AfterValidator(_check_http_url)]


class ScheduleAt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(
        description="When to send, ISO-8601 with a UTC offset, e.g. 2026-12-07T09:00:00+01:00."
    )


class StoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: NonEmptyLine = Field(max_length=300)
    body: MultiLine = Field(default="", max_length=100_000)
    url: HttpUrl = Field(default=None, max_length=2000)
    source: SingleLine | None = Field(default=None, max_length=200)
    image_url: HttpUrl = Field(default=None, max_length=2000)
    image_alt: SingleLine | None = Field(default=None, max_length=300)


class StoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int
    title: str
    body: str
    url: str | None
    source: str | None
    image_url: str | None
    image_alt: str | None


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
    story: StoryOut


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
