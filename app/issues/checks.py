"""Pre-send checks: what would go wrong, or look wrong, if the issue went out now.

Each finding names its severity (`error` blocks nothing by itself but makes `ok`
false), a stable code for scripts, a sentence for people, and where it is
(`stories[2].body`). Each check is a small function of the draft; `CHECKS` lists them
in the order their findings are reported, which the API answer keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.issues.schemas import CheckReport, Finding
from app.models import Issue, Newsletter, Story
from app.rendering.markdown import is_web_url, markdown_images_without_alt, markdown_links
from app.settings import base_url_warning

# Gmail clips a message whose HTML is larger than about 102 KB ("[Message clipped]"),
# hiding the rest, the unsubscribe link included.
GMAIL_CLIP_BYTES = 102 * 1024
SIZE_WARNING_BYTES = 80 * 1024
SUBJECT_WARNING_CHARS = 78
_IMG = re.compile(r"<img\b", re.IGNORECASE)
_HREF = re.compile(r'<a\b[^>]*\bhref="', re.IGNORECASE)


def _link_findings(where: str, text: str) -> list[Finding]:
    findings = []
    for url in markdown_links(text):
        scheme = urlsplit(url).scheme.lower()
        if is_web_url(url) or scheme == "mailto":
            continue
        shown = url if len(url) <= 80 else url[:77] + "..."
        findings.append(
            Finding(
                code="link_not_http",
                severity="error",
                message=f"the link {shown!r} is not an absolute http(s) URL and is "
                "removed from the email",
                where=where,
            )
        )
    return findings


def _alt_findings(where: str, text: str) -> list[Finding]:
    missing = markdown_images_without_alt(text)
    if not missing:
        return []
    return [
        Finding(
            code="image_without_alt",
            severity="warning",
            message=f"{missing} image(s) without alt text: readers with images off or "
            "using a screen reader get nothing",
            where=where,
        )
    ]


@dataclass(frozen=True, slots=True)
class _Draft:
    """What the checks look at: the issue, its stories, and the message made from them."""

    issue: Issue
    newsletter: Newsletter
    stories: list[Story]
    html: str
    text: str
    unsubscribe_url: str
    base_url: str | None
    dev: bool


Check = Callable[[_Draft], list[Finding]]


def _base_url(draft: _Draft) -> list[Finding]:
    if draft.base_url is None:
        return []
    https_problem = base_url_warning(draft.base_url, dev=draft.dev)
    if not https_problem:
        return []
    return [
        Finding(
            code="base_url_not_https",
            severity="warning",
            message=https_problem,
            where="BROADSHEET_BASE_URL",
        )
    ]


def _footer(draft: _Draft) -> list[Finding]:
    findings = []
    first_line = (draft.newsletter.postal_address or "").strip().splitlines()[:1]
    for part, body in (("html", draft.html), ("text", draft.text)):
        # A replaced template (TEMPLATES_DIR) could drop these; the law and the
        # reader need them in every copy.
        if draft.unsubscribe_url not in body:
            findings.append(
                Finding(
                    code="unsubscribe_link_missing",
                    severity="error",
                    message=f"the {part} part has no unsubscribe link: the template must "
                    "use unsubscribe_url",
                    where=f"template.{part}",
                )
            )
        if first_line and first_line[0].strip() not in body:
            findings.append(
                Finding(
                    code="postal_address_not_shown",
                    severity="error",
                    message=f"the {part} part does not show the postal address: the "
                    "template must use postal_address_lines",
                    where=f"template.{part}",
                )
            )
    return findings


def _subject(draft: _Draft) -> list[Finding]:
    subject = draft.issue.subject.strip()
    if not subject:
        return [
            Finding(
                code="subject_empty",
                severity="error",
                message="the subject is empty",
                where="subject",
            )
        ]
    if len(subject) > SUBJECT_WARNING_CHARS:
        return [
            Finding(
                code="subject_long",
                severity="warning",
                message=f"the subject has {len(subject)} characters; most inboxes show "
                f"about {SUBJECT_WARNING_CHARS} or fewer",
                where="subject",
            )
        ]
    return []


def _preheader(draft: _Draft) -> list[Finding]:
    if draft.issue.preheader.strip():
        return []
    return [
        Finding(
            code="preheader_missing",
            severity="info",
            message="no preheader: inboxes show the first text of the email instead",
            where="preheader",
        )
    ]


def _content(draft: _Draft) -> list[Finding]:
    if draft.stories or draft.issue.intro.strip():
        return []
    return [
        Finding(
            code="issue_empty",
            severity="error",
            message="the issue has no stories and no intro",
            where="stories",
        )
    ]


def _postal_address(draft: _Draft) -> list[Finding]:
    if (draft.newsletter.postal_address or "").strip():
        return []
    return [
        Finding(
            code="postal_address_missing",
            severity="error",
            message="the newsletter has no postal address; anti-spam laws (CAN-SPAM) "
            "require one in every footer",
            where="newsletter.postal_address",
        )
    ]


def _intro_and_outro(draft: _Draft) -> list[Finding]:
    findings = []
    for field in ("intro", "outro"):
        markdown = getattr(draft.issue, field)
        findings += _link_findings(field, markdown)
        findings += _alt_findings(field, markdown)
    return findings


def _stories(draft: _Draft) -> list[Finding]:
    findings = []
    for i, story in enumerate(sorted(draft.stories, key=lambda s: s.position)):
        where = f"stories[{i}]"
        findings += _link_findings(f"{where}.body", story.body)
        findings += _alt_findings(f"{where}.body", story.body)
        for field in ("url", "image_url"):
            value = getattr(story, field)
            if value and not is_web_url(value):
                findings.append(
                    Finding(
                        code="link_not_http",
                        severity="error",
                        message=f"the {field} is not an absolute http(s) URL",
                        where=f"{where}.{field}",
                    )
                )
        if story.image_url and not (story.image_alt or "").strip():
            findings.append(
                Finding(
                    code="image_without_alt",
                    severity="warning",
                    message="the story image has no alt text; the story title is used",
                    where=f"{where}.image_alt",
                )
            )
    return findings


def _html_size(draft: _Draft) -> list[Finding]:
    size = len(draft.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        return [
            Finding(
                code="html_too_large",
                severity="error",
                message=f"the HTML is {size:,} bytes; Gmail clips messages over "
                f"{GMAIL_CLIP_BYTES:,} bytes and hides the rest, unsubscribe link included",
                where="html",
            )
        ]
    if size > SIZE_WARNING_BYTES:
        return [
            Finding(
                code="html_large",
                severity="warning",
                message=f"the HTML is {size:,} bytes, close to Gmail's clipping limit of "
                f"{GMAIL_CLIP_BYTES:,} bytes",
                where="html",
            )
        ]
    return []


# In the order their findings are listed: installation, template, issue, stories, size.
CHECKS: tuple[Check, ...] = (
    _base_url,
    _footer,
    _subject,
    _preheader,
    _content,
    _postal_address,
    _intro_and_outro,
    _stories,
    _html_size,
)


def run_checks(
    issue: Issue,
    newsletter: Newsletter,
    stories: list[Story],
    *,
    html: str,
    text: str,
    unsubscribe_url: str,
    message_bytes: int,
    base_url: str | None = None,
    dev: bool = False,
) -> CheckReport:
    """Check the issue's content and the message a subscriber would get (`html`, `text`,
    made for a sample reader whose unsubscribe link is `unsubscribe_url`), and the
    installation's BASE_URL when given."""
    draft = _Draft(issue, newsletter, stories, html, text, unsubscribe_url, base_url, dev)
    findings = [finding for check in CHECKS for finding in check(draft)]
    return CheckReport(
        ok=not any(f.severity == "error" for f in findings),
        size_bytes=len(html.encode("utf-8")),
        size_limit_bytes=GMAIL_CLIP_BYTES,
        message_bytes=message_bytes,
        links=len(_HREF.findall(html)),
        images=len(_IMG.findall(html)),
        findings=findings,
    )
