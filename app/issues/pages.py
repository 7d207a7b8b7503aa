"""Public web archive: sent issues as pages and as an Atom feed (no key needed).

The web version shows the same sanitised content as the email, with no personal data
(no greeting, no unsubscribe token) and no tracking: the unsubscribe link becomes a
link to the subscribe page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.issues import repository
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import NotFound
from app.kit.web import csp_header, html_datetime
from app.models import Issue, Newsletter
from app.rendering.issue import IssueContent, format_date, issue_content, subscribe_url, web_url
from app.settings import Settings

router = APIRouter(tags=["archive"])

FEED_ENTRIES = 20
ARCHIVE_ENTRIES = 500

_env = Environment(
    loader=FileSystemLoader(str(Path(__file__).resolve().parents[1] / "templates")),
    autoescape=select_autoescape(enabled_extensions=("html", "xml")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["html_datetime"] = html_datetime
# An issue shows the images its editor chose, from wherever they are; all else stays 'self'.
ISSUE_PAGE_HEADERS = csp_header(img_src="'self' data: https:")

Slug = Annotated[str, PathParam(max_length=64)]


def published_at(issue: Issue) -> datetime:
    return issue.sent_at or issue.finished_at or issue.started_at or issue.updated_at


@dataclass(frozen=True, slots=True)
class Entry:
    issue: Issue
    url: str
    published: datetime
    date: str

    @property
    def published_text(self) -> str:
        return html_datetime(self.published)

    @property
    def updated(self) -> str:
        return html_datetime(max(self.published, self.issue.updated_at))


def _common(settings: Settings, newsletter: Newsletter) -> dict[str, Any]:
    base = f"{settings.base_url}/newsletters/{newsletter.slug}"
    return {
        "newsletter": newsletter,
        "subscribe_url": subscribe_url(settings, newsletter),
        "archive_url": f"{base}/archive",
        "feed_url": f"{base}/feed.xml",
        "postal_address_lines": [
            line.strip() for line in (newsletter.postal_address or "").splitlines() if line.strip()
        ],
    }


def _entry(settings: Settings, newsletter: Newsletter, issue: Issue) -> Entry:
    published = published_at(issue)
    return Entry(
        issue=issue,
        url=web_url(settings, newsletter, issue.number),
        published=published,
        date=format_date(published, newsletter.timezone or "UTC"),
    )


async def _newsletter(session: SessionDep, slug: str) -> Newsletter:
    newsletter = await repository.newsletter_by_slug(session, slug)
    if newsletter is None:
        raise NotFound(f"no newsletter with the slug {slug!r}")
    return newsletter


async def _content(session: SessionDep, issue: Issue) -> IssueContent:
    return issue_content(issue, await repository.stories(session, issue.id))


@router.get("/newsletters/{slug}/archive", response_class=HTMLResponse)
async def archive(slug: Slug, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    newsletter = await _newsletter(session, slug)
    issues = await repository.sent_issues(session, newsletter.id, limit=ARCHIVE_ENTRIES)
    html = _env.get_template("issues/archive.html").render(
        **_common(settings, newsletter),
        entries=[_entry(settings, newsletter, issue) for issue in issues],
    )
    return HTMLResponse(html)


@router.get("/newsletters/{slug}/issues/{number}", response_class=HTMLResponse)
async def issue_page(
    slug: Slug,
    number: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    newsletter = await _newsletter(session, slug)
    issue = await repository.sent_issue(session, newsletter.id, number)
    if issue is None:
        raise NotFound(f"no sent issue number {number} in {slug!r}")
    entry = _entry(settings, newsletter, issue)
    html = _env.get_template("issues/issue.html").render(
        **_common(settings, newsletter),
        issue=issue,
        content=await _content(session, issue),
        published=entry.published,
        date=entry.date,
    )
    return HTMLResponse(html, headers=ISSUE_PAGE_HEADERS)


@router.get("/newsletters/{slug}/feed.xml")
async def feed(slug: Slug, session: SessionDep, settings: SettingsDep) -> Response:
    newsletter = await _newsletter(session, slug)
    issues = await repository.sent_issues(session, newsletter.id, limit=FEED_ENTRIES)
    entries = []
    for issue in issues:
        content = _env.get_template("issues/_feed_entry.html").render(
            content=await _content(session, issue)
        )
        entries.append(_FeedEntry(_entry(settings, newsletter, issue), content))
    common = _common(settings, newsletter)
    updated = max([e.updated for e in entries] or [html_datetime(newsletter.updated_at)])
    xml = _env.get_template("issues/feed.xml").render(
        **common, feed_id=common["feed_url"], updated=updated, entries=entries
    )
    return Response(xml, media_type="application/atom+xml; charset=utf-8")


@dataclass(frozen=True, slots=True)
class _FeedEntry:
    entry: Entry
    content_html: str

    @property
    def issue(self) -> Issue:
        return self.entry.issue

    @property
    def url(self) -> str:
        return self.entry.url

    @property
    def updated(self) -> str:
        return self.entry.updated

    @property
    def published_text(self) -> str:
        return self.entry.published_text
