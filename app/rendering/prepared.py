"""The per-recipient stage of issue rendering: cheap substitution into prepared bytes.

`freeze_issue()` runs the expensive stage once, inside the send transaction, and stores
the result on the issue. `prepare_issue()` turns the frozen fields into a
`PreparedIssue` once per worker per issue: the complete MIME message as pre-encoded
pieces (headers, both quoted-printable parts, boundary) with holes for what differs
per recipient. `PreparedIssue.personalise()` fills the holes and joins the pieces;
nothing is parsed, inlined or flattened per recipient.

Each value is escaped for where it lands: HTML-escaped in the HTML part, plain in the
text part, and in headers an atom, a quoted string or RFC 2047 encoded words
(`app.rendering.mime`, which never lets a line boundary through). In the body each value
is quoted-printable encoded on its own and starts on a fresh encoded line, so it can
neither break the encoding nor start a header. Headers are not folded by the `email`
package: its folder drops the space between adjacent encoded words and can leave a
display name unquoted (see tests/security/test_header_encoding.py); the tests read every
message back with the `email` parser instead.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import html as html_lib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from functools import lru_cache

from app.kit import links
from app.kit.clock import utcnow
from app.kit.tokens import Signer
from app.models import Issue, Newsletter, Story
from app.rendering import issue as stage1
from app.rendering.dkim import DkimSigner, dkim_signer
from app.rendering.mime import (
    address_header,
    clean_name,
    header_line,
    list_id_header,
    multipart_alternative_header,
    part_header,
    qp_piece,
    qp_value,
)
from app.settings import Settings

NAME_FALLBACK = "there"
TEST_SUBJECT_PREFIX = "[Test] "

# Tracked links: every absolute http(s) href of the frozen HTML, in order of first
# appearance. The click endpoint recomputes this list from the same frozen HTML, so a
# link index in a click token always means the same URL.
_HREF = re.compile(r'href="(https?://[^"]*)"', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Recipient:
    delivery_id: int
    subscription_id: int
    email: str  # normalised, ASCII domain
    name: str  # may be ""


def freeze_issue(
    issue: Issue, newsletter: Newsletter, stories: Sequence[Story], settings: Settings
) -> None:
    """Run the expensive stage once and store it on the issue (inside the send transaction).

    `rendered_html` holds the inlined HTML with placeholders (the placeholder nonce in a
    trailing comment), `rendered_text` the text part with placeholders.
    """
    now = utcnow()
    rendered = stage1.render_issue(issue, newsletter, stories, settings, when=now)
    issue.rendered_html = rendered.frozen_html
    issue.rendered_text = rendered.text
    issue.rendered_at = now


def tracked_links(frozen_html: str) -> list[str]:
    """The ordered, distinct links a click token's index points into."""
    seen: dict[str, None] = {}
    for match in _HREF.finditer(frozen_html):
        seen.setdefault(html_lib.unescape(match.group(1)), None)
    return list(seen)


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _click_links(signer: Signer, base_url: str) -> Callable[[int, int], bytes]:
    """A fast maker of click URLs, `f(delivery_id, link_index)` -> URL bytes.

    The same tokens as `app.kit.links.click_token`, but the HMAC key schedule and the
    purpose prefix are computed once instead of once per link per recipient (31 links
    took 0.8 ms a copy). Checked against `click_token` before use; if the token format
    ever changes, the plain function is used instead.
    """
    prefix = f"{base_url}/t/c/".encode("ascii")
    keys = getattr(signer, "_keys", None)
    if type(signer) is Signer and keys:
        start = hmac.new(keys[0], links.CLICK.encode() + b"|", hashlib.sha256)

        def fast(delivery_id: int, index: int) -> bytes:
            payload = b"%d.%d" % (delivery_id, index)
            mac = start.copy()
            mac.update(payload)
            return prefix + _b64(payload) + b"." + _b64(mac.digest()[:16])

        if all(
            fast(d, i) == prefix + links.click_token(signer, d, i).encode()
            for d, i in ((1, 0), (987654321, 42))
        ):
            return fast

    def plain(delivery_id: int, index: int) -> bytes:
        return prefix + links.click_token(signer, delivery_id, index).encode()

    return plain


# Slots: what a hole in the prepared pieces is filled with.
_TO, _DATE, _MESSAGE_ID, _LIST_UNSUB = 0, 1, 2, 3
_TEXT_NAME, _TEXT_UNSUB, _HTML_NAME, _HTML_UNSUB, _HTML_PIXEL = 4, 5, 6, 7, 8
_FIRST_LINK = 9


class _Builder:
    """Collects static bytes and holes into one list of pieces."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.holes: list[tuple[int, int]] = []  # (position in pieces, slot)

    def static(self, data: bytes) -> None:
        if data:
            self.pieces.append(data)

    def hole(self, slot: int) -> None:
        self.holes.append((len(self.pieces), slot))
        self.pieces.append(b"")


class PreparedIssue:
    """One issue ready to personalise: build it once per worker, then call personalise()."""

    def __init__(
        self,
        rendered: stage1.RenderedIssue,
        issue: Issue,
        newsletter: Newsletter,
        settings: Settings,
        signer: Signer,
        *,
        track: bool = True,
        subject_prefix: str = "",
        dkim: DkimSigner | None = None,
        installation: str | None = None,
    ) -> None:
        self.issue_id: int = issue.id
        self._installation = installation
        self.envelope_from: str = newsletter.from_email
        self.links: list[str] = tracked_links(rendered.html)
        self._signer = signer
        self._click_url = _click_links(signer, settings.base_url)
        self._base_url = settings.base_url
        self._host = settings.base_host
        self._track_opens = track and newsletter.track_opens
        self._track_clicks = track and newsletter.track_clicks
        self._dkim = dkim
        self._date_cache: tuple[int, bytes] = (-1, b"")
        boundary = f"==_bs_{rendered.nonce}_{issue.id}"

        b = _Builder()
        b.static(address_header("From", newsletter.from_name, newsletter.from_email))
        b.hole(_TO)
        b.static(header_line("Subject", subject_prefix + issue.subject))
        b.hole(_DATE)
        b.hole(_MESSAGE_ID)
        if newsletter.reply_to:
            b.static(address_header("Reply-To", "", newsletter.reply_to))
        b.static(list_id_header(newsletter.name, f"{newsletter.slug}.{self._host}"))
        b.hole(_LIST_UNSUB)
        b.static(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"MIME-Version: 1.0\r\n" + multipart_alternative_header(boundary)
        )
        b.static(part_header(boundary, "plain"))
        text_slots = {
            rendered.placeholder(stage1.NAME): _TEXT_NAME,
            rendered.placeholder(stage1.UNSUBSCRIBE_URL): _TEXT_UNSUB,
        }
        self._encode_body(b, rendered.text, text_slots, links_by_url=None)
        b.static(b"\r\n" + part_header(boundary, "html"))
        html_slots = {
            rendered.placeholder(stage1.NAME): _HTML_NAME,
            rendered.placeholder(stage1.UNSUBSCRIBE_URL): _HTML_UNSUB,
            rendered.placeholder(stage1.OPEN_PIXEL): _HTML_PIXEL,
        }
        links_by_url = {url: i for i, url in enumerate(self.links)} if self._track_clicks else None
        html = rendered.html if rendered.html.endswith("\n") else rendered.html + "\n"
        self._encode_body(b, html, html_slots, links_by_url=links_by_url)
        b.static(f"\r\n--{boundary}--\r\n".encode())
        self._pieces = b.pieces
        self._holes = b.holes
        self._link_slots = sorted({slot for _, slot in b.holes if slot >= _FIRST_LINK})

    @staticmethod
    def _encode_body(
        b: _Builder, body: str, slots: dict[str, int], *, links_by_url: dict[str, int] | None
    ) -> None:
        patterns = [re.escape(name) for name in slots]
        if links_by_url is not None:
            patterns.append(r'(?<=href=")https?://[^"]*(?=")')
        splitter = re.compile("|".join(patterns), re.IGNORECASE)
        position = 0
        for match in splitter.finditer(body):
            b.static(qp_piece(body[position : match.start()]))
            token = match.group(0)
            if token in slots:
                b.hole(slots[token])
            else:
                assert links_by_url is not None
                b.hole(_FIRST_LINK + links_by_url[html_lib.unescape(token)])
            position = match.end()
        b.static(qp_piece(body[position:]))

    def message_id(self, delivery_id: int) -> str:
        """Derived from ids and the installation's tag (`app.kit.ids.installation_tag`)
        only, never from time: every retry of a delivery carries the same one, and two
        installations with the same BASE_URL never make the same one."""
        if not self._installation:
            raise ValueError("no installation tag: pass installation= to prepare_issue")
        return f"<d{delivery_id}.i{self.issue_id}.{self._installation}@{self._host}>"

    def _date(self) -> bytes:
        now = utcnow()
        second = int(now.timestamp())
        if self._date_cache[0] != second:
            value = format_datetime(now.replace(microsecond=0))
            self._date_cache = (second, f"Date: {value}\r\n".encode("ascii"))
        return self._date_cache[1]

    def personalise(self, r: Recipient, *, message_id: str | None = None) -> bytes:
        """The complete message for one recipient: CRLF line endings, ready for DATA."""
        name = clean_name(r.name)
        greeting = name or NAME_FALLBACK
        unsubscribe = links.unsubscribe_url(self._base_url, self._signer, r.subscription_id)
        values: list[bytes] = [b""] * (_FIRST_LINK + len(self.links))
        values[_TO] = address_header("To", name, r.email)
        values[_DATE] = self._date()
        values[_MESSAGE_ID] = (
            f"Message-ID: {message_id or self.message_id(r.delivery_id)}\r\n".encode("ascii")
        )
        # Not folded: some readers keep the folding space in front of the "<"; the line
        # stays far below 998 octets.
        values[_LIST_UNSUB] = f"List-Unsubscribe: <{unsubscribe}>\r\n".encode("ascii")
        values[_TEXT_NAME] = qp_value(greeting)
        values[_TEXT_UNSUB] = values[_HTML_UNSUB] = qp_value(unsubscribe)
        values[_HTML_NAME] = qp_value(html_lib.escape(greeting, quote=True))
        if self._track_opens:
            token = links.open_token(self._signer, r.delivery_id)
            values[_HTML_PIXEL] = qp_value(
                f'<img src="{self._base_url}/t/o/{token}" width="1" height="1" alt=""'
                ' style="display:block;width:1px;height:1px;border:0">'
            )
        for slot in self._link_slots:
            url = self._click_url(r.delivery_id, slot - _FIRST_LINK)
            # Tokens are URL-safe ASCII: short enough, the URL needs no encoding at all.
            values[slot] = url + b"=\r\n" if len(url) < 76 else qp_value(url.decode())
        pieces = self._pieces.copy()
        for position, slot in self._holes:
            pieces[position] = values[slot]
        message = b"".join(pieces)
        if self._dkim is not None:
            return self._dkim.sign(message)
        return message


def prepare_rendered(
    rendered: stage1.RenderedIssue,
    issue: Issue,
    newsletter: Newsletter,
    settings: Settings,
    signer: Signer,
    *,
    track: bool = True,
    subject_prefix: str = "",
    installation: str | None = None,
) -> PreparedIssue:
    """A PreparedIssue from a rendering held in memory (preview, test sends).

    Without `installation` it makes no Message-ID itself: give one to `personalise()`.
    """
    return PreparedIssue(
        rendered,
        issue,
        newsletter,
        settings,
        signer,
        track=track,
        subject_prefix=subject_prefix,
        dkim=dkim_signer(settings),
        installation=installation,
    )


def prepare_issue(
    issue: Issue,
    newsletter: Newsletter,
    settings: Settings,
    signer: Signer,
    *,
    installation: str,
    track: bool = True,
    subject_prefix: str = "",
) -> PreparedIssue:
    """Built once per worker per issue from the frozen fields (no database, no premailer).

    `installation` is `app.kit.ids.installation_tag()`, which every delivery's Message-ID
    carries.
    """
    if issue.rendered_html is None or issue.rendered_text is None:
        raise ValueError(f"issue {issue.id} has not been frozen (freeze_issue)")
    rendered = _thaw(issue.rendered_html, issue.rendered_text)
    return prepare_rendered(
        rendered,
        issue,
        newsletter,
        settings,
        signer,
        track=track,
        subject_prefix=subject_prefix,
        installation=installation,
    )


@lru_cache(maxsize=16)
def _thaw(frozen_html: str, frozen_text: str) -> stage1.RenderedIssue:
    return stage1.RenderedIssue.from_frozen(frozen_html, frozen_text)
