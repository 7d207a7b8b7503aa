"""Header encoding: whatever a user types into a name or subject either is refused by the
validators of app.kit.text or comes back out of the bytes unchanged, with no extra header
and no line over 998 octets (SPEC section 6)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.kit.text import check_single_line
from app.rendering.transactional import build_message
from tests.factories import LINE_BREAKS

EXPECTED_HEADERS = [
    "Content-Type",
    "Date",
    "From",
    "MIME-Version",
    "Message-ID",
    "Subject",
    "To",
]

# Pieces that exercise the folder, the quoting of display names and RFC 2047 decoding.
_PIECES = [
    "=?",
    "?=",
    "?q?",
    "?Q?",
    "?b?",
    "?B?",
    "UTF-8",
    "utf-8",
    "iso-8859-1",
    "=0A",
    "=0D",
    "=0D=0A",
    "DQo=",
    "Cg==",
    "DQpCY2M6IHhAZXZpbC5leGFtcGxl",
    "Bcc: x@evil.example",
    " ",
    "  ",
    "\t",
    '"',
    "\\",
    "(",
    ")",
    "<",
    ">",
    ",",
    ";",
    ":",
    "@",
    ".",
    "é",
    "日本語",
    "🙂",
    "\u200b",
    "\ufeff",
    "x" * 77,
    "é" * 40,
    "\r\n",
    *LINE_BREAKS,
]
pieces = st.lists(st.sampled_from(_PIECES), max_size=20).map("".join)
header_text = st.one_of(st.text(max_size=200), pieces, st.text(max_size=900))


def build(*, subject: str = "Weekly", from_name: str = "Editor", to_name: str = "Reader") -> bytes:
    return build_message(
        from_name=from_name,
        from_email="news@example.com",
        to_email="reader@example.org",
        to_name=to_name,
        subject=subject,
        text="text part",
        html="<p>html part</p>",
        message_id="<confirm.1@example.com>",
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_well_formed(data: bytes) -> EmailMessage:
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in data.split(b"\r\n")), "a line over 998 octets"
    # Every header line is either a new header "Name: ..." or a folded continuation;
    # a lone LF or CR inside the head is how an injected header starts.
    assert b"\n" not in head.replace(b"\r\n", b"")
    assert b"\r" not in head.replace(b"\r\n", b"")
    message = parse(data)
    assert sorted(message.keys()) == EXPECTED_HEADERS
    return message


def accepted(value: str) -> str | None:
    """The stored value, or None when the validators refuse it (which is a fine answer)."""
    try:
        return check_single_line(value)
    except ValueError:
        return None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(header_text)
@example("=?UTF-8?Q?=0A?=Bcc: x@evil.example")
@example("=?UTF-8?B?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=")
@example("=?utf-8?q?hi?=")
@example("Caf\u00e9 \u65e5\u672c " * 30)
def test_no_subject_adds_a_header_or_a_line_over_998_octets(value: str) -> None:
    subject = accepted(value)
    if subject is None:
        return
    assert_well_formed(build(subject=subject))


def test_a_short_non_ascii_subject_keeps_its_spaces() -> None:
    subject = "news naïve — 🙂 été — été 日本 über"
    assert parse(build(subject=subject))["Subject"] == subject


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(header_text)
@example("=?utf-8?q?hi?=")
def test_any_accepted_subject_comes_back_unchanged(value: str) -> None:
    subject = accepted(value)
    if subject is None:
        return
    assert parse(build(subject=subject))["Subject"] == subject


# Names are capped at 200 characters by the API schemas.
name_text = st.one_of(st.text(max_size=200), pieces.map(lambda text: text[:200]))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name_text)
@example("=?UTF-8?Q?=0A?=Bcc: x@evil.example")
@example("=?UTF-8?B?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=")
@example('Smith, "Jo" <jo@example.com> (editor) \\')
@example("x" * 200)
def test_no_display_name_adds_a_header_or_an_address(value: str) -> None:
    name = accepted(value)
    if name is None:
        return
    message = assert_well_formed(build(from_name=name, to_name=name))
    for header in ("From", "To"):
        assert len(message[header].addresses) == 1


def test_a_name_ending_in_a_quote_keeps_its_address() -> None:
    message = parse(build(from_name="0" * 74 + '"', to_name="0" * 74 + '"'))
    assert message["From"].addresses[0].addr_spec == "news@example.com"
    assert message["To"].addresses[0].addr_spec == "reader@example.org"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name_text)
@example('Smith, "Jo" <jo@example.com> (editor) \\')
@example("=?" + "x" * 44)
def test_any_accepted_display_name_comes_back_with_the_same_characters(value: str) -> None:
    name = accepted(value)
    if name is None:
        return
    message = parse(build(from_name=name, to_name=name))
    for header in ("From", "To"):
        address = message[header].addresses[0]
        assert address.addr_spec in ("news@example.com", "reader@example.org")
        # Python 3.11's parser keeps the white space between two adjacent encoded words
        # of a display name, which RFC 2047 section 6.2 says to drop; so compare without
        # white space here (subjects above round-trip exactly).
        assert "".join(address.display_name.split()) == "".join(name.split())


@pytest.mark.parametrize("length", [2000, 5000])
def test_an_overlong_unbroken_name_keeps_every_line_within_998_octets(length: int) -> None:
    name = accepted("x" * length)
    assert name is not None
    assert_well_formed(build(from_name=name, to_name=name))
