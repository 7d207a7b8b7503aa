"""A representative issue as ORM objects in memory (no database needed to render)."""

from __future__ import annotations

from typing import Any

from app.kit.ids import message_id_tag
from app.kit.tokens import Signer
from app.models import Issue, Newsletter, Story
from app.settings import Settings
from tests.conftest import make_settings
from tests.factories import NEWSLETTER

SECRET = b"rendering-test-secret-0123456789"
# The installation tag a worker reads from its database (app.kit.ids.installation_tag).
INSTALLATION = message_id_tag("sample installation")
LONG_BODY = (
    "Researchers published *new findings* on Tuesday, with [the full paper]"
    "(https://example.org/paper?id=42&lang=en) and a summary that runs on for a while "
    "so the paragraph wraps over several lines in the text part, as real ones do.\n\n"
    "- the first point, with `code`\n- the second point\n\n"
    "> A quote from someone involved, which is worth reading twice.\n\n"
    "| Metric | Value |\n|---|---|\n| Readers | 1,204 |\n"
)


def settings(**overrides: Any) -> Settings:
    return make_settings(
        "sqlite+aiosqlite:///unused.db", 2525, base_url="https://news.example.com", **overrides
    )


def signer() -> Signer:
    return Signer(SECRET)


def newsletter(**overrides: Any) -> Newsletter:
    values: dict[str, Any] = {"id": 1, "description": "", **NEWSLETTER}
    values.update(overrides)
    return Newsletter(**values)


def story(i: int, **overrides: Any) -> Story:
    values: dict[str, Any] = {
        "id": 100 + i,
        "issue_id": 7,
        "position": i,
        "title": f"Story {i + 1}: a headline that says what happened",
        "body": LONG_BODY,
        "url": f"https://example.org/stories/{i + 1}",
        "source": "The Example Times",
        "image_url": f"https://img.example.org/{i + 1}.jpg" if i % 2 == 0 else None,
        "image_alt": f"Picture for story {i + 1}" if i % 4 == 0 else None,
    }
    values.update(overrides)
    return Story(**values)


def issue(**overrides: Any) -> Issue:
    values: dict[str, Any] = {
        "id": 7,
        "newsletter_id": 1,
        "number": 12,
        "subject": "This week: findings, quotes & more",
        "preheader": "Five minutes of reading for your Monday",
        "intro": "Welcome to **this week's** issue. Our [guide](https://example.com/guide).",
        "outro": "Thanks for reading. *Reply* to tell us what you think.",
        "status": "draft",
    }
    values.update(overrides)
    return Issue(**values)


def stories(count: int = 10) -> list[Story]:
    return [story(i) for i in range(count)]
