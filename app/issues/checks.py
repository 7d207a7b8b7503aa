"""Pre-send checks: what would go wrong, or look wrong, if the issue went out now.

Each finding names its severity (`error` blocks nothing by itself but makes `ok`
false), a stable code for scripts, a sentence for people, and where it is
(`stories[2].body`).
"""

from __future__ import annotations

import re
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
    findings: list[Finding] = []
    https_problem = base_url_warning(base_url, dev=dev) if base_url is not None else None
    if https_problem:
        findings.append(
            Finding(
                code="base_url_not_https",
                severity="warning",
                message=https_problem,
                where="BROADSHEET_BASE_URL",
            )
        )
    for part, body in (("html", html), ("text", text)):
        # A replaced template (TEMPLATES_DIR) could drop these; the law and the
        # reader need them in every copy.
        if unsubscribe_url not in body:
            findings.append(
                Finding(
                    code="unsubscribe_link_missing",
                    severity="error",
                    message=f"the {part} part has no unsubscribe link: the template must "
                    "use unsubscribe_url",
                    where=f"template.{part}",
                )
            )
        first_line = (newsletter.postal_address or "").strip().splitlines()[:1]
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
    subject = issue.subject.strip()
    if not subject:
        findings.append(
            Finding(
                code="subject_empty",
                severity="error",
                message="the subject is empty",
                where="subject",
            )
        )
    elif len(subject) > SUBJECT_WARNING_CHARS:
        findings.append(
            Finding(
                code="subject_long",
                severity="warning",
                message=f"the subject has {len(subject)} characters; most inboxes show "
                f"about {SUBJECT_WARNING_CHARS} or fewer",
                where="subject",
            )
        )
    if not issue.preheader.strip():
        findings.append(
            Finding(
                code="preheader_missing",
                severity="info",
                message="no preheader: inboxes show the first text of the email instead",
                where="preheader",
            )
        )
    if not stories and not issue.intro.strip():
        findings.append(
            Finding(
                code="issue_empty",
                severity="error",
                message="the issue has no stories and no intro",
                where="stories",
            )
        )
    if not (newsletter.postal_address or "").strip():
        findings.append(
            Finding(
                code="postal_address_missing",
                severity="error",
                message="the newsletter has no postal address; anti-spam laws (CAN-SPAM) "
                "require one in every footer",
                where="newsletter.postal_address",
            )
        )
    for field in ("intro", "outro"):
        text = getattr(issue, field)
        findings += _link_findings(field, text)
        findings += _alt_findings(field, text)
    for i, story in enumerate(sorted(stories, key=lambda s: s.position)):
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
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        findings.append(
            Finding(
                code="html_too_large",
                severity="error",
                message=f"the HTML is {size:,} bytes; Gmail clips messages over "
                f"{GMAIL_CLIP_BYTES:,} bytes and hides the rest, unsubscribe link included",
                where="html",
            )
        )
    elif size > SIZE_WARNING_BYTES:
        findings.append(
            Finding(
                code="html_large",
                severity="warning",
                message=f"the HTML is {size:,} bytes, close to Gmail's clipping limit of "
                f"{GMAIL_CLIP_BYTES:,} bytes",
                where="html",
            )
        )
    return CheckReport(
        ok=not any(f.severity == "error" for f in findings),
        size_bytes=size,
        size_limit_bytes=GMAIL_CLIP_BYTES,
        message_bytes=message_bytes,
        links=len(_HREF.findall(html)),
        images=len(_IMG.findall(html)),
        findings=findings,
    )
