"""The editor's forms read into the issues API's own schemas, and their errors by field.

The editor posts the whole issue at once: `subject`, `preheader`, `intro`, `outro`,
`story_count` and per story `story-{i}-{field}`. It validates with `IssueUpdate`, the
same schema as PATCH /api/v1/issues/{id}, so a rule lives in one place; what failed is
named by the form field it came from, to be shown beside that field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from app.admin.web import zone
from app.issues.schemas import MAX_STORIES, IssueUpdate, StoryIn, TestSend
from app.issues.service import STORY_FIELDS
from app.kit.errors import BadRequest

ISSUE_FIELDS = ("subject", "preheader", "intro", "outro")
OPTIONAL = frozenset({"url", "source", "image_url", "image_alt"})
NEW = "new"  # the prefix of the "add a story" fields
MAX_TEST_ADDRESSES = 10


class FormProblem(BadRequest):
    """Form input that cannot be read at all (a 400 naming the problem)."""


@dataclass
class Draft:
    """What the editor typed: shown back as typed, with errors keyed by field name."""

    values: dict[str, str]
    stories: list[dict[str, str]]
    errors: dict[str, str] = field(default_factory=dict)
    update: IssueUpdate | None = None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _story_count(form: FormData) -> int:
    raw = _text(form, "story_count").strip() or "0"
    if not raw.isdigit() or int(raw) > MAX_STORIES:
        raise FormProblem(f"story_count must be a number from 0 to {MAX_STORIES}")
    return int(raw)


def story_payload(story: dict[str, str]) -> dict[str, Any]:
    """A story as the API takes it: an empty optional field is no value."""
    return {
        name: (None if name in OPTIONAL and not story[name].strip() else story[name])
        for name in STORY_FIELDS
    }


def _message(error: Any) -> str:
    ctx = error.get("ctx") or {}
    if error.get("type") in ("too_long", "string_too_long") and "max_length" in ctx:
        return f"is too long: at most {ctx['max_length']:,} characters"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")


def field_name(loc: tuple[Any, ...], prefix: str = "story") -> str:
    """Where a validation error points, as the form field's name."""
    if len(loc) >= 3 and loc[0] == "stories":
        return f"{prefix}-{loc[1]}-{loc[2]}"
    if len(loc) >= 1 and loc[0] in STORY_FIELDS and prefix == NEW:
        return f"{NEW}-{loc[0]}"
    return str(loc[0]) if loc else "form"


LABELS = {
    "subject": "the subject",
    "preheader": "the preheader",
    "intro": "the intro",
    "outro": "the outro",
    "title": "title",
    "body": "text",
    "url": "link",
    "source": "source",
    "image_url": "image address",
    "image_alt": "image description",
}


def label(name: str) -> str:
    """A form field's name as a person says it: "story-1-url" -> "story 2's link"."""
    parts = name.split("-")
    if len(parts) == 3 and parts[0] == "story" and parts[1].isdigit():
        return f"story {int(parts[1]) + 1}'s {LABELS.get(parts[2], parts[2])}"
    return LABELS.get(name, name)


def errors_of(exc: ValidationError, prefix: str = "story") -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors():
        found.setdefault(field_name(tuple(error["loc"]), prefix), _message(error))
    return found


def read_draft(form: FormData) -> Draft:
    """The issue's fields and stories from the editor's form, validated."""
    values = {name: _text(form, name) for name in ISSUE_FIELDS}
    stories = [
        {name: _text(form, f"story-{i}-{name}") for name in STORY_FIELDS}
        for i in range(_story_count(form))
    ]
    draft = Draft(values, stories)
    body = {**values, "stories": [story_payload(s) for s in stories]}
    try:
        draft.update = IssueUpdate.model_validate(body)
    except ValidationError as exc:
        draft.errors = errors_of(exc)
    return draft


def read_new_story(form: FormData) -> tuple[dict[str, str], StoryIn | None, dict[str, str]]:
    """The "add a story" fields: (as typed, the story or None, errors)."""
    typed = {name: _text(form, f"{NEW}-{name}") for name in STORY_FIELDS}
    try:
        return typed, StoryIn.model_validate(story_payload(typed)), {}
    except ValidationError as exc:
        return typed, None, errors_of(exc, prefix=NEW)


def read_addresses(raw: str) -> tuple[list[str], str | None]:
    """Test-send addresses from one field (commas, semicolons, spaces): (valid, error)."""
    parts = [part for part in re.split(r"[\s,;]+", raw.strip()) if part]
    if not parts:
        return [], "Enter at least one email address."
    if len(parts) > MAX_TEST_ADDRESSES:
        return [], f"At most {MAX_TEST_ADDRESSES} addresses at once."
    try:
        checked = TestSend.model_validate({"to": parts})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        which = parts[loc[1]] if len(loc) > 1 and isinstance(loc[1], int) else raw
        return [], f"{which}: {_message(error)}"
    return list(checked.to), None


def read_local_time(raw: str, tz: str) -> datetime:
    """A datetime-local value ("2026-12-07T09:00") as a moment in the newsletter's zone."""
    value = raw.strip()
    if not value:
        raise FormProblem("Choose a date and time.")
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise FormProblem("Write the time as YYYY-MM-DDTHH:MM.") from None
    if naive.tzinfo is not None:
        raise FormProblem("Give the time without an offset: it is read in the newsletter's zone.")
    when = naive.replace(tzinfo=zone(tz))
    try:
        when.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by the zone's offset
        raise FormProblem("That time is out of range.") from None
    return when


def local_input_value(when: datetime | None, tz: str) -> str:
    """A moment as a datetime-local value in the newsletter's zone."""
    if when is None:
        return ""
    return when.astimezone(zone(tz)).strftime("%Y-%m-%dT%H:%M")
