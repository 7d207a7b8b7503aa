"""Issues: writing them, previewing them, test sends.

An issue can be changed or deleted only while it is a draft or ready; from `scheduled`
on, what subscribers get is settled (and, once sending starts, frozen on the row).
"""

from __future__ import annotations

import email
import email.policy
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from anyio import to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from app.issues import checks, repository
from app.issues.schemas import CheckReport, IssueCreate, IssueUpdate, StoryIn
from app.kit import links
from app.kit.clock import utcnow
from app.kit.errors import Conflict, NotFound
from app.kit.tokens import Signer
from app.models import Issue, IssueStatus, Newsletter, Story
from app.rendering.issue import RenderedIssue, format_date, render_issue
from app.rendering.prepared import (
    TEST_SUBJECT_PREFIX,
    PreparedIssue,
    Recipient,
    prepare_rendered,
)
from app.settings import Settings

EDITABLE = frozenset({IssueStatus.draft.value, IssueStatus.ready.value})
# Before these states the content may still change: preview renders it afresh; after
# them, what subscribers get is the frozen rendering.
NOT_FROZEN = frozenset(
    {IssueStatus.draft.value, IssueStatus.ready.value, IssueStatus.scheduled.value}
)
SAMPLE_NAME = "Alex Reader"
SAMPLE_EMAIL = "alex.reader@example.com"

PreviewFormat = Literal["html", "text", "eml"]


def _story_values(story: StoryIn) -> dict[str, object]:
    return story.model_dump()


async def create_issue(session: AsyncSession, newsletter: Newsletter, body: IssueCreate) -> Issue:
    values = body.model_dump(exclude={"stories"})
    issue_id = await repository.insert_issue(session, newsletter.id, values)
    await repository.add_stories(
        session, issue_id, [_story_values(s) for s in body.stories], start=0
    )
    issue = await repository.get(session, issue_id)
    assert issue is not None
    return issue


STORY_FIELDS = ("title", "body", "url", "source", "image_url", "image_alt")


async def duplicate_issue(session: AsyncSession, issue_id: int) -> Issue:
    """A new draft of the same newsletter with a copy of the issue's content.

    Subject, preheader, intro, outro and the stories are copied; the copy gets the next
    number and none of the original's sending state, so it can be sent again (to a
    segment, say: "resend to those who did not open").
    """
    loaded = await load(session, issue_id)
    source = loaded.issue
    values = {
        "subject": source.subject,
        "preheader": source.preheader,
        "intro": source.intro,
        "outro": source.outro,
    }
    copy_id = await repository.insert_issue(session, loaded.newsletter.id, values)
    await repository.add_stories(
        session,
        copy_id,
        [{name: getattr(story, name) for name in STORY_FIELDS} for story in loaded.stories],
        start=0,
    )
    return await get(session, copy_id)


async def newest_page(
    session: AsyncSession, newsletter_id: int, *, before_id: int | None, limit: int
) -> list[Issue]:
    """Up to `limit` + 1 issues of a newsletter, newest first, older than `before_id`."""
    return await repository.newest_page(session, newsletter_id, before_id=before_id, limit=limit)


async def in_progress(session: AsyncSession, *, limit: int = 20) -> list[Issue]:
    """Every issue sending or paused now, across newsletters."""
    return await repository.in_progress(session, limit)


def ensure_editable(issue: Issue) -> None:
    if issue.status not in EDITABLE:
        raise Conflict(f"issue {issue.id} is {issue.status}; only a draft or ready issue changes")


async def get(session: AsyncSession, issue_id: int) -> Issue:
    """The issue, or 404: every endpoint and command finds an issue through this."""
    issue = await repository.get(session, issue_id)
    if issue is None:
        raise NotFound(f"no issue with id {issue_id}")
    return issue


async def current_status(session: AsyncSession, issue_id: int) -> str:
    """The issue's state as stored now (404 when it is gone)."""
    return await repository.current_status(session, issue_id)


async def locked_issue(session: AsyncSession, issue_id: int) -> Issue:
    issue = await repository.get(session, issue_id, for_update=True)
    if issue is None:
        raise NotFound(f"no issue with id {issue_id}")
    return issue


async def update_issue(session: AsyncSession, issue_id: int, body: IssueUpdate) -> Issue:
    issue = await locked_issue(session, issue_id)
    ensure_editable(issue)
    changes = body.model_dump(exclude_unset=True, exclude={"stories"})
    for field, value in changes.items():
        if value is None:
            continue  # an explicit null leaves the field as it is
        setattr(issue, field, value)
    if body.stories is not None:
        await repository.delete_stories(session, issue.id)
        await session.flush()
        await repository.add_stories(
            session, issue.id, [_story_values(s) for s in body.stories], start=0
        )
    if changes or body.stories is not None:
        # Touch the row even when only stories changed, so updated_at says so.
        issue.updated_at = utcnow()
    await session.flush()
    return issue


async def delete_issue(session: AsyncSession, issue_id: int) -> None:
    issue = await locked_issue(session, issue_id)
    ensure_editable(issue)
    await repository.delete_issue(session, issue)
    await session.flush()


async def append_story(session: AsyncSession, issue_id: int, story: StoryIn) -> int:
    issue = await locked_issue(session, issue_id)
    ensure_editable(issue)
    story_id = await repository.append_story(session, issue.id, _story_values(story))
    issue.updated_at = utcnow()
    await session.flush()
    return story_id


@dataclass(frozen=True, slots=True)
class Loaded:
    issue: Issue
    newsletter: Newsletter
    stories: list[Story]


async def load(session: AsyncSession, issue_id: int) -> Loaded:
    issue = await repository.get(session, issue_id)
    if issue is None:
        raise NotFound(f"no issue with id {issue_id}")
    newsletter = await repository.get_newsletter(session, issue.newsletter_id)
    return Loaded(issue, newsletter, await repository.stories(session, issue.id))


async def rendering(loaded: Loaded, settings: Settings) -> RenderedIssue:
    """What subscribers get: the frozen rendering once sending started, else the current
    content rendered now (premailer runs in a thread, off the event loop).

    An unsent issue's rendering is kept per process under everything it is made from
    (its text, its stories, the newsletter's last change, the day shown in its header):
    the dashboard's editor shows the preview and the checks of the same content on every
    page view and autosave, and premailer costs tens of milliseconds a rendering.
    """
    issue = loaded.issue
    if issue.status not in NOT_FROZEN and issue.rendered_html and issue.rendered_text:
        return RenderedIssue.from_frozen(issue.rendered_html, issue.rendered_text)
    key = _rendering_key(loaded, settings)
    cached = _RENDERINGS.get(key)
    if cached is not None:
        _RENDERINGS.move_to_end(key)
        return cached
    rendered = await to_thread.run_sync(
        lambda: render_issue(issue, loaded.newsletter, loaded.stories, settings)
    )
    _RENDERINGS[key] = rendered
    while len(_RENDERINGS) > _RENDERINGS_KEPT:
        _RENDERINGS.popitem(last=False)
    return rendered


_RENDERINGS: OrderedDict[tuple[object, ...], RenderedIssue] = OrderedDict()
_RENDERINGS_KEPT = 64


def _rendering_key(loaded: Loaded, settings: Settings) -> tuple[object, ...]:
    issue, newsletter = loaded.issue, loaded.newsletter
    return (
        issue.id,
        issue.number,
        issue.subject,
        issue.preheader,
        issue.intro,
        issue.outro,
        tuple(tuple(getattr(s, name) for name in STORY_FIELDS) for s in loaded.stories),
        newsletter.id,
        newsletter.updated_at,
        format_date(utcnow(), newsletter.timezone or "UTC"),
        settings.templates_dir,
        settings.base_url,
    )


def sample_recipient() -> Recipient:
    return Recipient(delivery_id=0, subscription_id=0, email=SAMPLE_EMAIL, name=SAMPLE_NAME)


def sample_unsubscribe_url(settings: Settings, signer: Signer) -> str:
    return links.unsubscribe_url(settings.base_url, signer, sample_recipient().subscription_id)


def preview_message(
    rendered: RenderedIssue, loaded: Loaded, settings: Settings, signer: Signer
) -> bytes:
    """The message a subscriber would get, for the sample subscriber (no tracking)."""
    prepared = prepare_rendered(
        rendered, loaded.issue, loaded.newsletter, settings, signer, track=False
    )
    # A random part, as test sends have: no two installations make the same one.
    mid = f"<preview.i{loaded.issue.id}.{secrets.token_hex(5)}@{settings.base_host}>"
    return prepared.personalise(sample_recipient(), message_id=mid)


def message_parts(message: bytes) -> tuple[str, str]:
    """(text, html) decoded from a message's bytes."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text_part = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",))
    assert isinstance(text_part, EmailMessage)
    assert isinstance(html_part, EmailMessage)
    return str(text_part.get_content()), str(html_part.get_content())


@dataclass(frozen=True, slots=True)
class Preview:
    """The message the sample subscriber would get now, whole and in its two parts."""

    message: bytes
    text: str
    html: str


async def preview(loaded: Loaded, settings: Settings, signer: Signer) -> Preview:
    rendered = await rendering(loaded, settings)
    message = preview_message(rendered, loaded, settings, signer)
    text, html = message_parts(message)
    return Preview(message, text, html)


async def check_report(loaded: Loaded, settings: Settings, signer: Signer) -> CheckReport:
    """The pre-send checks of the issue as a subscriber would get it now."""
    shown = await preview(loaded, settings, signer)
    return checks.run_checks(
        loaded.issue,
        loaded.newsletter,
        loaded.stories,
        html=shown.html,
        text=shown.text,
        unsubscribe_url=sample_unsubscribe_url(settings, signer),
        message_bytes=len(shown.message),
        base_url=settings.base_url,
        dev=settings.dev,
    )


async def prepare_test(loaded: Loaded, settings: Settings, signer: Signer) -> PreparedIssue:
    """The issue prepared for test sends: "[Test]" before the subject, no tracking."""
    rendered = await rendering(loaded, settings)
    return prepare_rendered(
        rendered,
        loaded.issue,
        loaded.newsletter,
        settings,
        signer,
        track=False,
        subject_prefix=TEST_SUBJECT_PREFIX,
    )


async def test_recipient(session: AsyncSession, loaded: Loaded, address: str) -> Recipient:
    """A test send's recipient: a subscriber's own name and subscription, else none."""
    found = await repository.subscription_for(session, loaded.newsletter.id, address)
    subscription_id, name = found if found else (0, "")
    return Recipient(delivery_id=0, subscription_id=subscription_id, email=address, name=name)
