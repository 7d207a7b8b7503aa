from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.kit.addresses import EmailAddress
from app.kit.text import MultiLine, SingleLine
from app.models import IssueStatus
from app.rendering.markdown import is_web_url

MAX_BODY = 100_000
MAX_STORIES = 100


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _web_url(value: str) -> str:
    value = value.strip()
    if not is_web_url(value):
        raise ValueError("must be an absolute http:// or https:// URL")
    # Quotes and angle brackets are accepted: every template escapes them.
    if any(char.isspace() for char in value):
        raise ValueError("must not contain spaces")
    return value


Subject = Annotated[SingleLine, Field(max_length=300), AfterValidator(_non_empty)]
Title = Annotated[SingleLine, Field(max_length=300), AfterValidator(_non_empty)]
WebUrl = Annotated[SingleLine, Field(max_length=2000), AfterValidator(_web_url)]
Markdown = Annotated[MultiLine, Field(max_length=MAX_BODY)]


class StoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    body: Markdown = ""
    url: WebUrl | None = None
    source: Annotated[SingleLine, Field(max_length=200)] | None = None
    image_url: WebUrl | None = None
    image_alt: Annotated[SingleLine, Field(max_length=300)] | None = None


class IssueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    preheader: Annotated[SingleLine, Field(max_length=300)] = ""
    intro: Markdown = ""
    outro: Markdown = ""
    stories: Annotated[list[StoryIn], Field(max_length=MAX_STORIES)] = []


class IssueUpdate(BaseModel):
    """Only the fields given change; `stories`, when given, replaces them all."""

    model_config = ConfigDict(extra="forbid")

    subject: Subject | None = None
    preheader: Annotated[SingleLine, Field(max_length=300)] | None = None
    intro: Markdown | None = None
    outro: Markdown | None = None
    stories: Annotated[list[StoryIn], Field(max_length=MAX_STORIES)] | None = None


class StoryRead(BaseModel):
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
    model_config = ConfigDict(from_attributes=True)

    id: int
    newsletter: str
    number: int
    subject: str
    status: IssueStatus
    scheduled_at: datetime | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class IssueRead(IssueSummary):
    preheader: str
    intro: str
    outro: str
    rendered_at: datetime | None
    stories: list[StoryRead]


class TestSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[list[EmailAddress], Field(min_length=1, max_length=10)]


class TestSendQueued(BaseModel):
    queued: int


Severity = Literal["error", "warning", "info"]


class Finding(BaseModel):
    code: str
    severity: Severity
    message: str
    where: str | None = None


class CheckReport(BaseModel):
    ok: bool = Field(description="No finding of severity error.")
    size_bytes: int = Field(description="Size of the HTML part as a subscriber gets it.")
    size_limit_bytes: int
    message_bytes: int = Field(description="Size of the whole message for one recipient.")
    links: int
    images: int
    findings: list[Finding]
