"""One-off messages (confirmation, test sends) as bytes.

Volume is low, so the body is built with `EmailMessage`; the address and subject
headers come from `app.rendering.mime`, which encodes them the same way as issue mail
(RFC 2047 words of at most 75 characters, no line over 998 octets, nothing a user typed
able to start a header). Issue mail takes the prepared fast path in
`app.rendering.prepared` instead.
"""

from __future__ import annotations

import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from app.kit.clock import utcnow
from app.rendering.dkim import DkimSigner
from app.rendering.mime import address_header, header_line

# SMTP policy: CRLF line endings, lines folded well under 998 octets.
SMTP_POLICY = email.policy.SMTP.clone(max_line_length=78)
_HEADER_NAME = re.compile(r"[!-9;-~]+")


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
    dkim: DkimSigner | None = None,
) -> bytes:
    """The bytes of a multipart/alternative message (text first, HTML last).

    With `dkim` (see `app.rendering.dkim.dkim_signer(settings)`) the message is signed.
    """
    head = [
        address_header("From", from_name, from_email),
        address_header("To", to_name, to_email),
        header_line("Subject", subject),
        f"Date: {format_datetime(utcnow().replace(microsecond=0))}\r\n".encode("ascii"),
        header_line("Message-ID", message_id),
    ]
    if reply_to:
        head.append(address_header("Reply-To", "", reply_to))
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        head.append(header_line(name, value))
    body = EmailMessage(policy=SMTP_POLICY)
    body.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        body.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    message = b"".join(head) + body.as_bytes(policy=SMTP_POLICY)
    return dkim.sign(message) if dkim is not None else message


def message_id(kind: str, key: int | str, domain: str) -> str:
    """A Message-ID derived from ids, so a retry of the same message keeps it."""
    return f"<{kind}.{key}@{domain}>"
