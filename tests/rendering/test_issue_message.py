"""Golden tests on the bytes of a representative issue (SPEC section 6)."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.kit import links
from app.kit.text import check_single_line
from app.kit.tokens import unsign_id
from app.models import Issue, Newsletter, Story
from app.rendering.issue import RenderedIssue, render_issue
from app.rendering.prepared import (
    PreparedIssue,
    Recipient,
    freeze_issue,
    prepare_issue,
    tracked_links,
)
from app.settings import Settings
from tests.rendering import samples

READER = Recipient(delivery_id=501, subscription_id=77, email="reader@example.org", name="Ada")


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return str(text.get_content()), str(html.get_content())


def build(
    *,
    newsletter: Newsletter | None = None,
    issue: Issue | None = None,
    stories: list[Story] | None = None,
    settings: Settings | None = None,
) -> tuple[PreparedIssue, Issue]:
    newsletter = newsletter or samples.newsletter()
    issue = issue or samples.issue()
    settings = settings or samples.settings()
    freeze_issue(issue, newsletter, samples.stories() if stories is None else stories, settings)
    return prepare_issue(
        issue, newsletter, settings, samples.signer(), installation=samples.INSTALLATION
    ), issue


@pytest.fixture(scope="module")
def prepared() -> PreparedIssue:
    return build()[0]


@pytest.fixture(scope="module")
def message_bytes(prepared: PreparedIssue) -> bytes:
    return prepared.personalise(READER)


def test_message_parses_with_no_defects_text_part_first_html_last(message_bytes: bytes) -> None:
    message = parse(message_bytes)
    assert message.get_content_type() == "multipart/alternative"
    subparts = list(message.iter_parts())
    assert [p.get_content_type() for p in subparts] == ["text/plain", "text/html"]
    for part in message.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    for subpart in subparts:
        assert subpart.get_content_charset() == "utf-8"
        assert subpart["Content-Transfer-Encoding"] == "quoted-printable"


def test_every_header_of_spec_section_6_is_there(
    prepared: PreparedIssue, message_bytes: bytes
) -> None:
    message = parse(message_bytes)
    unsubscribe = links.unsubscribe_url("https://news.example.com", samples.signer(), 77)
    assert str(message["From"]) == "The Weekly Desk <desk@news.example.com>"
    assert str(message["To"]) == "Ada <reader@example.org>"
    assert message["Subject"] == "This week: findings, quotes & more"
    assert message["Date"].datetime is not None
    assert message["Message-ID"] == f"<d501.i7.{samples.INSTALLATION}@news.example.com>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == "The Weekly <weekly.news.example.com>"
    assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(message["Reply-To"]) == "editor@news.example.com"
    assert prepared.envelope_from == "desk@news.example.com"
    for name in ("To", "Subject", "Message-ID", "List-Unsubscribe"):
        assert len(message.get_all(name) or []) == 1


def test_reply_to_is_left_out_when_the_newsletter_has_none() -> None:
    prepared, _ = build(newsletter=samples.newsletter(reply_to=None), stories=[])
    assert "Reply-To" not in parse(prepared.personalise(READER))


def test_postal_address_unsubscribe_and_view_in_browser_are_in_both_parts(
    message_bytes: bytes,
) -> None:
    text, html = parts(parse(message_bytes))
    unsubscribe = links.unsubscribe_url("https://news.example.com", samples.signer(), 77)
    web = "https://news.example.com/newsletters/weekly/issues/12"
    for body in (text, html):
        assert "1 Fleet Street" in body
        assert "London EC4Y 1AA" in body
        assert unsubscribe in body
        assert web in body
        assert "You are receiving this because you subscribed to The Weekly" in body


def test_text_part_has_every_story_with_its_link_and_a_numbered_link_list(
    message_bytes: bytes,
) -> None:
    text, _ = parts(parse(message_bytes))
    for i in range(10):
        assert f"Story {i + 1}: a headline that says what happened" in text
        assert f"Read more: https://example.org/stories/{i + 1}" in text
    assert "Hi Ada," in text
    assert "the full paper [2]" in text
    assert "[1] https://example.com/guide" in text
    assert "[2] https://example.org/paper?id=42&lang=en" in text
    assert "- the first point, with code" in text
    assert "> A quote from someone involved" in text
    assert "<" not in text.replace("<b>", "")  # no markup leaks into the text part


def test_ten_stories_stay_under_gmail_clipping_and_every_line_within_limits(
    message_bytes: bytes,
) -> None:
    _, html = parts(parse(message_bytes))
    assert len(html.encode()) < 102 * 1024
    assert len(message_bytes) < 102 * 1024
    lines = message_bytes.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = message_bytes.split(b"\r\n\r\n", 1)[1]
    # Quoted-printable lines are at most 76 characters (RFC 2045).
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"\n" not in message_bytes.replace(b"\r\n", b"")
    assert b"\r" not in message_bytes.replace(b"\r\n", b"")


def test_html_is_inlined_with_only_media_rules_left_in_a_style_block(message_bytes: bytes) -> None:
    _, html = parts(parse(message_bytes))
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert styles, "the @media rules must stay"
    for block in styles:
        outside_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", block)
        assert outside_media.strip() == ""
        assert "max-width: 620px" in block
    assert 'style="' in html
    assert 'width="600"' in html
    assert 'class="preheader" style="display:none' in html
    assert "Five minutes of reading for your Monday" in html


def test_story_images_have_alt_text_falling_back_to_the_title(message_bytes: bytes) -> None:
    _, html = parts(parse(message_bytes))
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 5
    for tag in images:
        assert re.search(r'alt="[^"]+"', tag)
    assert 'alt="Picture for story 1"' in html
    assert 'alt="Story 3: a headline that says what happened"' in html


def test_message_id_is_the_same_for_one_delivery_and_differs_between_deliveries(
    prepared: PreparedIssue,
) -> None:
    first = parse(prepared.personalise(READER))["Message-ID"]
    again = parse(prepared.personalise(READER))["Message-ID"]
    other = parse(prepared.personalise(Recipient(502, 78, "other@example.org", "")))["Message-ID"]
    assert first == again == prepared.message_id(501)
    assert other == prepared.message_id(502) != first


def test_a_new_worker_preparing_the_same_frozen_issue_builds_the_same_message() -> None:
    prepared, issue = build()
    newsletter, settings = samples.newsletter(), samples.settings()
    again = prepare_issue(
        issue, newsletter, settings, samples.signer(), installation=samples.INSTALLATION
    )
    strip_date = re.compile(rb"Date: [^\r]*\r\n")
    assert strip_date.sub(b"", prepared.personalise(READER)) == strip_date.sub(
        b"", again.personalise(READER)
    )


def _expected(rendered: RenderedIssue, recipient: Recipient, name: str) -> EmailMessage:
    """The same message built the slow, obvious way with EmailMessage."""
    import html as html_lib

    unsubscribe = links.unsubscribe_url(
        "https://news.example.com", samples.signer(), recipient.subscription_id
    )

    def fill(body: str, escape: bool) -> str:
        shown = html_lib.escape(name or "there") if escape else (name or "there")
        body = body.replace(rendered.placeholder("NAME"), shown)
        body = body.replace(rendered.placeholder("UNSUBSCRIBE_URL"), unsubscribe)
        return body.replace(rendered.placeholder("OPEN_PIXEL"), "")

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = "This week: findings, quotes & more"
    msg.set_content(fill(rendered.text, False), charset="utf-8", cte="quoted-printable")
    msg.add_alternative(
        fill(rendered.html, True), subtype="html", charset="utf-8", cte="quoted-printable"
    )
    return parse(msg.as_bytes())


@pytest.mark.parametrize("name", ["Ada", "", "Zoë O'Brien-Smith 日本", 'A "quoted" <b>&amp;</b>'])
def test_personalised_bytes_read_back_equal_a_message_built_with_email_message(
    name: str,
) -> None:
    newsletter, issue, settings = samples.newsletter(), samples.issue(), samples.settings()
    rendered = render_issue(issue, newsletter, samples.stories(3), settings)
    issue.rendered_html, issue.rendered_text = rendered.frozen_html, rendered.text
    prepared = prepare_issue(
        issue, newsletter, settings, samples.signer(), installation=samples.INSTALLATION
    )
    recipient = Recipient(9, 3, "reader@example.org", name)
    got = parse(prepared.personalise(recipient))
    expected = _expected(rendered, recipient, name)
    assert got["Subject"] == expected["Subject"]
    assert got["To"].addresses[0].display_name == name
    assert got["To"].addresses[0].addr_spec == "reader@example.org"
    assert parts(got) == parts(expected)


HOSTILE_NAMES = [
    "<script>alert('x')</script>",
    'O\'Brien "the boss" & <co>',
    "Zoë Ångström 日本語 🙂",
    "Eve\r\nBcc: victim@example.com",
    "Eve\nSubject: spoofed",
    "Mallory\u2028Bcc: x@evil.example",
    "=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBleGFtcGxlLmNvbQ==?=",
    "@@NAME@@ \\ , ; : ( )",
    "Ω" * 200,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_subscriber_name_is_escaped_for_each_place_it_lands(
    prepared: PreparedIssue, name: str
) -> None:
    data = prepared.personalise(Recipient(1, 2, "reader@example.org", name))
    message = parse(data)
    for part in message.walk():
        assert not part.defects
    shown = re.sub(r"[\r\n\u2028]", " ", name).strip()
    # Header: one address, the right one, no header added.
    assert len(message["To"].addresses) == 1
    assert message["To"].addresses[0].addr_spec == "reader@example.org"
    # Compared without whitespace: Python's address parser (unlike RFC 2047 readers)
    # puts a space between adjacent encoded words of a long name.
    assert "".join(message["To"].addresses[0].display_name.split()) == "".join(shown.split())
    assert "Bcc" not in message
    assert message["Subject"] == "This week: findings, quotes & more"
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"\r\n(?:Bcc|Subject):.*(?:victim|spoofed|evil)", head)
    text, html = parts(message)
    # Text: as typed (minus line breaks).
    assert f"Hi {shown}," in text
    # HTML: escaped, never markup.
    import html as html_lib

    assert f"Hi {html_lib.escape(shown, quote=True)}," in html
    assert "<script>alert" not in html
    assert "<co>" not in html


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
@example("\x00\x0b\x0c\x1c\x1d\x1e\x85")
@example("=" * 200)
@example(" " * 80 + "x")
def test_any_accepted_name_gives_a_well_formed_message(name: str) -> None:
    try:
        name = check_single_line(name)
    except ValueError:
        name = "".join(ch for ch in name if ch.isprintable())
    prepared = _shared_prepared()
    data = prepared.personalise(Recipient(1, 2, "reader@example.org", name))
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    message = parse(data)
    assert all(not part.defects for part in message.walk())
    assert len(message["To"].addresses) == 1
    assert message["To"].addresses[0].addr_spec == "reader@example.org"
    assert sorted(set(message.keys())) == sorted(set(parse(prepared.personalise(READER)).keys()))
    text, _ = parts(message)
    assert f"Hi {name.strip() or 'there'}," in text.replace("\t", " ") or "\t" in name


_CACHE: dict[str, PreparedIssue] = {}


def _shared_prepared() -> PreparedIssue:
    if "p" not in _CACHE:
        _CACHE["p"] = build(stories=samples.stories(2))[0]
    return _CACHE["p"]


def test_empty_name_falls_back_in_the_greeting_and_leaves_a_bare_address(
    prepared: PreparedIssue,
) -> None:
    data = prepared.personalise(Recipient(1, 2, "reader@example.org", ""))
    message = parse(data)
    assert b"\r\nTo: reader@example.org\r\n" in data
    text, html = parts(message)
    assert "Hi there," in text
    assert "Hi there," in html


def test_non_ascii_subject_and_names_are_rfc_2047_encoded() -> None:
    prepared, _ = build(
        newsletter=samples.newsletter(from_name="Rédaction Ünïcode", name="Le Café"),
        issue=samples.issue(subject=("Café 日本 — naïve über " * 8).strip()),
        stories=[],
    )
    data = prepared.personalise(Recipient(1, 2, "reader@example.org", "Zoë"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    for line in head.split(b"\r\n"):
        assert len(line) <= 78 or line.startswith(b"List-Unsubscribe: <https://"), line
    message = parse(data)
    assert message["Subject"] == ("Café 日本 — naïve über " * 8).strip()
    assert message["From"].addresses[0].display_name == "Rédaction Ünïcode"
    assert message["To"].addresses[0].display_name == "Zoë"
    assert message["List-Id"] == "Le Café <weekly.news.example.com>"


class _Markup(HTMLParser):
    """Collects tags and attributes, to look for anything executable."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]


def assert_no_executable_markup(html: str, *, allow_relative: bool = False) -> None:
    parser = _Markup()
    parser.feed(html)
    assert "script" not in parser.tags
    assert "iframe" not in parser.tags
    assert "object" not in parser.tags
    for name, value in parser.attrs:
        assert not name.startswith("on"), (name, value)
        if name in ("href", "src"):
            scheme = urlsplit(value.strip()).scheme.lower()
            assert scheme in ("", "http", "https", "mailto") or value.startswith("@@"), value
            if not allow_relative:
                assert scheme != "" or value.startswith("@@") or not value, value


XSS = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">j</a>'


def test_xss_in_every_editor_field_never_reaches_the_email_as_markup() -> None:
    issue = samples.issue(
        subject="<script>alert('s')</script>",
        preheader='"><script>alert("p")</script>',
        intro=XSS + "\n\n[click](javascript:alert(4)) <iframe src=https://evil.example></iframe>",
        outro=XSS + '<svg onload="alert(5)"></svg><style>body{display:none}</style>',
    )
    story = samples.story(
        0,
        title='<img src=x onerror="alert(6)">',
        body=XSS + "\n\n![x](javascript:alert(7)) [y](data:text/html;base64,PHNjcmlwdD4=)",
        url='https://example.org/"><script>alert(8)</script>',
        source="<b onmouseover=alert(9)>src</b>",
        image_url='https://img.example.org/a.png" onerror="alert(10)',
        image_alt='" onerror="alert(11)',
    )
    prepared, _ = build(issue=issue, stories=[story])
    message = parse(prepared.personalise(READER))
    text, html = parts(message)
    assert_no_executable_markup(html)
    # Markdown shows a refused link as its literal text; it is never an attribute.
    assert not re.search(r'(?:href|src)="\s*(?:javascript|data):', html, re.IGNORECASE)
    assert "&lt;script&gt;alert('s')&lt;/script&gt;" in html
    assert message["Subject"] == "<script>alert('s')</script>"
    assert "display:none}" not in html


def test_tracking_off_leaves_no_tracking_links(message_bytes: bytes) -> None:
    _, html = parts(parse(message_bytes))
    assert "/t/o/" not in html
    assert "/t/c/" not in html
    assert 'href="https://example.org/stories/1"' in html


def test_tracking_on_adds_a_pixel_and_signed_click_links_for_that_delivery() -> None:
    newsletter = samples.newsletter(track_opens=True, track_clicks=True)
    prepared, issue = build(newsletter=newsletter, stories=samples.stories(3))
    message = parse(prepared.personalise(READER))
    text, html = parts(message)
    pixel = re.findall(r'<img src="https://news\.example\.com/t/o/([^"]+)"', html)
    assert len(pixel) == 1
    assert unsign_id(samples.signer(), links.OPEN, pixel[0]) == 501
    assert issue.rendered_html is not None
    frozen_links = tracked_links(issue.rendered_html)
    assert "https://example.org/stories/1" in frozen_links
    hrefs = re.findall(r'href="([^"]+)"', html)
    clicks = [h for h in hrefs if h.startswith("https://news.example.com/t/c/")]
    assert clicks
    assert all(not h.startswith("https://example.org") for h in hrefs)
    seen = set()
    for href in clicks:
        delivery, index = samples.signer().unsign(links.CLICK, href.rsplit("/", 1)[1])
        assert delivery == "501"
        seen.add(frozen_links[int(index)])
    assert seen == set(frozen_links)
    # The unsubscribe link is never wrapped, so it works without the tracker.
    unsubscribe = links.unsubscribe_url("https://news.example.com", samples.signer(), 77)
    assert f'href="{unsubscribe}"' in html
    assert "/t/c/" not in text


def test_a_replaced_templates_dir_is_used_and_sandboxed(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    (tmp_path / "issue.html").write_text(
        "<html><head><style>p{color:red}</style></head><body><p>Custom {{ subject }} "
        '{{ subscriber_name }}</p><a href="{{ unsubscribe_url }}">u</a>{{ open_pixel }}'
        "</body></html>"
    )
    (tmp_path / "issue.txt").write_text("Custom text {{ subscriber_name }} {{ unsubscribe_url }}")
    settings = samples.settings(templates_dir=tmp_path)
    prepared, _ = build(issue=samples.issue(subject="<b>S</b>"), stories=[], settings=settings)
    text, html = parts(parse(prepared.personalise(READER)))
    assert "Custom &lt;b&gt;S&lt;/b&gt; Ada" in html
    assert 'style="color:red"' in html
    assert text.startswith("Custom text Ada https://news.example.com/unsubscribe/")
    (tmp_path / "issue.html").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    from jinja2.exceptions import SecurityError

    from app.rendering.environment import email_environment

    email_environment.cache_clear()
    with pytest.raises(SecurityError):
        build(stories=[], settings=samples.settings(templates_dir=tmp_path))
    email_environment.cache_clear()


def test_a_newsletter_template_name_picks_its_subfolder_and_falls_back_to_default(
    tmp_path: object,
) -> None:
    import shutil
    from pathlib import Path

    from app.rendering.environment import DEFAULT_TEMPLATES_DIR, email_environment

    assert isinstance(tmp_path, Path)
    shutil.copytree(DEFAULT_TEMPLATES_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "fancy").mkdir()
    (tmp_path / "fancy" / "issue.html").write_text(
        '<html><body><p>Fancy {{ subject }}</p><a href="{{ unsubscribe_url }}">u</a>'
        "{{ open_pixel }}</body></html>"
    )
    (tmp_path / "fancy" / "issue.txt").write_text("Fancy {{ subscriber_name }}")
    email_environment.cache_clear()
    try:
        settings = samples.settings(templates_dir=tmp_path)
        fancy, _ = build(
            newsletter=samples.newsletter(template="fancy"), stories=[], settings=settings
        )
        text, html = parts(parse(fancy.personalise(READER)))
        assert "Fancy This week" in html
        assert text.startswith("Fancy Ada")
        missing, _ = build(
            newsletter=samples.newsletter(template="missing"), stories=[], settings=settings
        )
        text, html = parts(parse(missing.personalise(READER)))
        assert "Fancy" not in html
        assert "You are receiving this because you subscribed to The Weekly" in html
    finally:
        email_environment.cache_clear()
