"""One-off messages (confirmation, test sends): built with the `email` package's header API.

Volume is low, so these use `EmailMessage` directly; issue mail takes the prepared
fast path in `app.rendering.prepared` instead.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from app.kit.clock import utcnow

# SMTP policy: CRLF line endings, RFC 2047 encoding of non-ASCII headers, lines folded
# well under 998 octets.
SMTP_POLICY = email.policy.SMTP.clone(max_line_length=78)


def make_address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def build_message(
    *,
    from_name: str,
    from_email: str,
    to_email: str,
    to_name: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The bytes of a multipart/alternative message (text first, HTML last)."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = make_address(from_name, from_email)
    msg["To"] = make_address(to_name, to_email)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id
    if reply_to:
        msg["Reply-To"] = reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes(policy=SMTP_POLICY)


def message_id(kind: str, key: int | str, domain: str) -> str:
    """A Message-ID derived from ids, so a retry of the same message keeps it."""
    return f"<{kind}.{key}@{domain}>"
