"""The issue every benchmark sends: ten stories of a weekly digest, the same words for
Broadsheet (through its API) and for the naive baseline (through bench/templates/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUBJECT = "The Harbour Weekly #42: tides, trams and a library that never closes"
PREHEADER = "Ten stories from the week, in five minutes of reading."
NEWSLETTER_NAME = "The Harbour Weekly"
POSTAL_ADDRESS = "The Harbour Weekly, 12 Quay Street, 4100 Portmouth"
FROM_NAME = "The Harbour Weekly"
FROM_EMAIL = "weekly@harbour.example.org"

INTRO = [
    "Good morning. It was a week of small decisions with long tails: a council vote on "
    "the tram extension, a quiet change to the ferry timetable and a library that decided "
    "to stay open through the night during exam season.",
    "As always, every story links to the reporting it comes from. Reply to this email if "
    "we got something wrong; we read every answer.",
]

OUTRO = [
    "That is all for this week. If a friend would enjoy this letter, forward it: the "
    "subscribe link is at the bottom of the web version.",
    "See you next Monday, and mind the tides on the north pier.",
]

_SENTENCES = [
    "The plan was first presented in spring and has changed twice since then.",
    "Residents who spoke at the meeting were divided, though most asked for clearer dates.",
    "The budget line covers the first phase only; the rest depends on a regional grant.",
    "Engineers expect the work to take eleven weeks if the weather holds.",
    "A spokesperson said the figures would be published before the next session.",
    "Shop owners on the high street asked for the works to avoid the December weeks.",
    "Similar schemes in two neighbouring towns took longer than planned but came in on budget.",
    "The committee will review the first results in the autumn and report to the council.",
]

_TOPICS = [
    ("City council", "Council approves the tram extension to the northern quays"),
    ("Transport", "Ferry timetable shifts by ten minutes to meet the early trains"),
    ("Culture", "The central library will stay open all night during exam weeks"),
    ("Harbour", "Record spring tides expected on the north pier this weekend"),
    ("Schools", "Two primary schools share a new science teacher and a greenhouse"),
    ("Business", "The fish market's new cold store opens after three years of delays"),
    ("Environment", "Volunteers counted 214 species in the dune survey"),
    ("Housing", "Old rope works to become forty homes and a covered market"),
    ("Sport", "Rowing club wins the coastal regatta for the first time since 1987"),
    ("Food", "A bakery on Quay Street keeps the recipe of the harbour loaf alive"),
]


@dataclass(frozen=True, slots=True)
class Story:
    kicker: str
    title: str
    paragraphs: list[str]
    url: str
    source: str

    @property
    def body_markdown(self) -> str:
        return "\n\n".join(self.paragraphs)


def _paragraphs(index: int) -> list[str]:
    # Two short paragraphs, rotated per story so that stories differ.
    first = " ".join(_SENTENCES[(index + k) % len(_SENTENCES)] for k in range(2))
    return [first, _SENTENCES[(index + 2) % len(_SENTENCES)]]


STORIES = [
    Story(
        kicker=kicker,
        title=title,
        paragraphs=_paragraphs(i),
        url=f"https://news.harbour.example.org/2026/11/story-{i + 1}",
        source="Portmouth Gazette" if i % 2 else "Harbour Radio",
    )
    for i, (kicker, title) in enumerate(_TOPICS)
]


def issue_payload() -> dict[str, Any]:
    """The body of POST /api/v1/newsletters/{slug}/issues for this issue."""
    return {
        "subject": SUBJECT,
        "preheader": PREHEADER,
        "intro": "\n\n".join(INTRO),
        "outro": "\n\n".join(OUTRO),
        "stories": [
            {"title": s.title, "body": s.body_markdown, "url": s.url, "source": s.source}
            for s in STORIES
        ],
    }


def template_context() -> dict[str, Any]:
    """What bench/templates/newsletter.* need, apart from the per-recipient fields."""
    return {
        "subject": SUBJECT,
        "preheader": PREHEADER,
        "newsletter_name": NEWSLETTER_NAME,
        "number": 42,
        "date": "Monday 23 November 2026",
        "intro": INTRO,
        "outro": OUTRO,
        "stories": STORIES,
        "postal_address": POSTAL_ADDRESS,
        "web_url": "https://news.harbour.example.org/issues/42",
    }
