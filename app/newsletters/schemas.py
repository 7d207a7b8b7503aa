"""Newsletter payloads: every field a user types is validated before it is stored."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.kit.addresses import EmailAddress
from app.kit.cron import validate_cron, validate_timezone
from app.kit.text import MultiLine, NonEmptyLine, check_single_line

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_TEMPLATE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_timezone(value: str) -> str:
    # The scheduler's own rules, so a zone the API accepts is one the scheduler can use.
    return validate_timezone(check_single_line(value))


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    value = check_single_line(value)
    if not value.strip():
        return None
    return validate_cron(value)


def _check_template(value: str) -> str:
    value = check_single_line(value)
    if not _TEMPLATE_RE.match(value):
        raise ValueError("must be a template name of lower-case letters, digits, - and _")
    return value


Timezone = Annotated[str, AfterValidator(_check_timezone)]
Cron = Annotated[str | None, AfterValidator(_check_cron)]
TemplateName = Annotated[str, AfterValidator(_check_template)]
# `new` is the address of the dashboard's create form (/admin/newsletters/new).
RESERVED_SLUGS = frozenset({"new"})


def _check_slug(value: str) -> str:
    if value in RESERVED_SLUGS:
        raise ValueError(f"'{value}' is reserved; choose another slug")
    return value


Slug = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=SLUG_PATTERN),
    AfterValidator(_check_slug),
]


class NewsletterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: NonEmptyLine = Field(max_length=200)
    description: MultiLine = Field(default="", max_length=5000)
    from_name: NonEmptyLine = Field(max_length=200)
    from_email: EmailAddress
    reply_to: EmailAddress | None = None
    postal_address: MultiLine = Field(default="", max_length=1000)
    double_opt_in: bool = True
    schedule_cron: Cron = Field(default=None, max_length=120)
    timezone: Timezone = "UTC"
    auto_send_upcoming: bool = False
    track_opens: bool = False
    track_clicks: bool = False
    template: TemplateName = "default"


class NewsletterUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug | None = None
    name: NonEmptyLine | None = Field(default=None, max_length=200)
    description: MultiLine | None = Field(default=None, max_length=5000)
    from_name: NonEmptyLine | None = Field(default=None, max_length=200)
    from_email: EmailAddress | None = None
    reply_to: EmailAddress | None = None
    postal_address: MultiLine | None = Field(default=None, max_length=1000)
    double_opt_in: bool | None = None
    schedule_cron: Cron = Field(default=None, max_length=120)
    timezone: Timezone | None = None
    auto_send_upcoming: bool | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    template: TemplateName | None = None

    # reply_to and schedule_cron may be cleared with null; every other field keeps a value.
    @field_validator(
        "slug",
        "name",
        "description",
        "from_name",
        "from_email",
        "postal_address",
        "double_opt_in",
        "timezone",
        "auto_send_upcoming",
        "track_opens",
        "track_clicks",
        "template",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class NewsletterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    slug: str
    name: str
    description: str
    from_name: str
    from_email: str
    reply_to: str | None
    postal_address: str
    double_opt_in: bool
    schedule_cron: str | None
    timezone: str
    auto_send_upcoming: bool
    track_opens: bool
    track_clicks: bool
    template: str
    created_at: datetime
    updated_at: datetime
