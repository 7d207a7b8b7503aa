"""The expensive stage of issue rendering, run once per issue.

Markdown is rendered and sanitised, the Jinja2 templates of `email_templates/` are
filled in, the CSS is inlined (`app.rendering.inlining`, the one path of every email:
only `@media` rules stay in a `<style>` block) and the text part is written from the
same sanitised HTML. Whatever differs per recipient is left as a placeholder
`@@<nonce>.<NAME>@@`: premailer leaves those alone (it rewrites `{{ }}` inside an
href), and the nonce, random per rendering, means nothing an editor types can pose as
a placeholder.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Template, TemplateNotFound
from markupsafe import Markup

from app.kit.clock import utcnow
from app.models import Issue, Newsletter, Story
from app.rendering.environment import email_environment
from app.rendering.inlining import inline_css
from app.rendering.markdown import is_web_url, render_markdown
from app.rendering.text import LinkList, html_to_text
from app.settings import Settings

NAME = "NAME"
UNSUBSCRIBE_URL = "UNSUBSCRIBE_URL"
OPEN_PIXEL = "OPEN_PIXEL"
PLACEHOLDERS = (NAME, UNSUBSCRIBE_URL, OPEN_PIXEL)

_MARKER = "<!--broadsheet-placeholders:{}-->"
_MARKER_RE = re.compile(r"\s*<!--broadsheet-placeholders:([0-9a-f]{8,32})-->\s*\Z")
_MONTHS = (
    "January February March April May June July August September October November December"
).split()


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """The issue rendered once: HTML and text with per-recipient placeholders."""

    html: str
    text: str
    nonce: str

    def placeholder(self, name: str) -> str:
        return placeholder(self.nonce, name)

    @property
    def frozen_html(self) -> str:
        """The HTML as stored on the issue, the nonce kept in a trailing comment."""
        return self.html + "\n" + _MARKER.format(self.nonce) + "\n"

    @classmethod
    def from_frozen(cls, html: str, text: str) -> RenderedIssue:
        match = _MARKER_RE.search(html)
        if match is None:
            raise ValueError("the frozen HTML has no placeholder marker")
        return cls(html=html[: match.start()], text=text, nonce=match.group(1))


def placeholder(nonce: str, name: str) -> str:
    return f"@@{nonce}.{name}@@"


def web_url(settings: Settings, newsletter: Newsletter, number: int) -> str:
    """The public web version of an issue ("view in browser")."""
    return f"{settings.base_url}/newsletters/{newsletter.slug}/issues/{number}"


def subscribe_url(settings: Settings, newsletter: Newsletter) -> str:
    return f"{settings.base_url}/newsletters/{newsletter.slug}/subscribe"


def format_date(when: datetime, timezone: str) -> str:
    try:
        local = when.astimezone(ZoneInfo(timezone))
    except (KeyError, ValueError):
        local = when
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


@dataclass(frozen=True, slots=True)
class StoryContent:
    """One story, sanitised and ready for any template (email, web page, feed)."""

    title: str
    url: str | None
    source: str
    image_url: str | None
    image_alt: str
    body_html: Markup


@dataclass(frozen=True, slots=True)
class IssueContent:
    intro_html: Markup
    outro_html: Markup
    stories: list[StoryContent]


def issue_content(issue: Issue, stories: Sequence[Story]) -> IssueContent:
    """The editor's content made safe: Markdown rendered and sanitised, bad URLs dropped."""
    items = []
    for story in sorted(stories, key=lambda s: s.position):
        url = story.url if is_web_url(story.url) else None
        image = story.image_url if is_web_url(story.image_url) else None
        items.append(
            StoryContent(
                title=story.title,
                url=url,
                source=story.source or "",
                image_url=image,
                image_alt=(story.image_alt or "").strip() or story.title,
                body_html=Markup(render_markdown(story.body)),
            )
        )
    return IssueContent(
        intro_html=Markup(render_markdown(issue.intro)),
        outro_html=Markup(render_markdown(issue.outro)),
        stories=items,
    )


def _template(settings: Settings, newsletter: Newsletter, suffix: str) -> Template:
    env = email_environment(settings.templates_dir)
    names = [f"issue.{suffix}"]
    if newsletter.template and newsletter.template != "default":
        names.insert(0, f"{newsletter.template}/issue.{suffix}")
    try:
        return env.select_template(names)
    except TemplateNotFound:  # pragma: no cover - the default ships with the project
        raise


def render_issue(
    issue: Issue,
    newsletter: Newsletter,
    stories: Sequence[Story],
    settings: Settings,
    *,
    when: datetime | None = None,
) -> RenderedIssue:
    """Render the issue's HTML and text once, leaving placeholders for each recipient."""
    nonce = secrets.token_hex(8)
    content = issue_content(issue, stories)
    address_lines = [
        line.strip() for line in (newsletter.postal_address or "").splitlines() if line.strip()
    ]
    common = {
        "newsletter_name": newsletter.name,
        "subject": issue.subject,
        "preheader": issue.preheader,
        "number": issue.number,
        "date": format_date(when or utcnow(), newsletter.timezone or "UTC"),
        "subscriber_name": placeholder(nonce, NAME),
        "unsubscribe_url": placeholder(nonce, UNSUBSCRIBE_URL),
        "web_url": web_url(settings, newsletter, issue.number),
        "postal_address_lines": address_lines,
    }
    html = _template(settings, newsletter, "html").render(
        **common,
        intro_html=content.intro_html,
        outro_html=content.outro_html,
        stories=content.stories,
        open_pixel=placeholder(nonce, OPEN_PIXEL),
    )
    html = inline_css(html)

    links = LinkList()
    intro_text = html_to_text(content.intro_html, links)
    text_stories = [
        {
            "title": story.title,
            "url": story.url,
            "source": story.source,
            "body_text": html_to_text(story.body_html, links),
        }
        for story in content.stories
    ]
    outro_text = html_to_text(content.outro_html, links)
    text = _template(settings, newsletter, "txt").render(
        **common,
        intro_text=intro_text,
        outro_text=outro_text,
        stories=text_stories,
        links=links.urls,
    )
    return RenderedIssue(html=html, text=_tidy_text(text), nonce=nonce)


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return tidy + "\n"
