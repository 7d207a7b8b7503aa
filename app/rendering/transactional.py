"""One-off messages (confirmation emails) as bytes.

Headers and body parts come from `app.rendering.mime`, which encodes them the same way
as issue mail: RFC 2047 words of at most 75 characters, quoted-printable lines of at
most 76, nothing a user typed able to start a header. A confirmation is built inside the
subscribe request, so it is built directly as bytes: `EmailMessage` costs about 3 ms a
message, most of a subscribe request's CPU. Issue mail takes the prepared path in
`app.rendering.prepared`, which fills holes in bytes built once per issue.
"""

from __future__ import annotations

import re
import secrets
from email.utils import format_datetime

from app.kit.clock import utcnow
from app.rendering.dkim import DkimSigner
from app.rendering.mime import (
    address_header,
    header_line,
    multipart_alternative_header,
    part_header,
    qp_piece,
)

_HEADER_NAME = re.compile(r"[!-9;-~]+")


def build_message(
    *,
    from_name: str,
    from_email: str,
    to_email: str,
    to_name: str,
    subject: str,
    text: str,
    html: str,
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
    head.append(b"MIME-Version: 1.0\r\n")
    message = b"".join(head) + _body(text, html)
    return dkim.sign(message) if dkim is not None else message


def _body(text: str, html: str) -> bytes:
    """The Content-Type header and the multipart/alternative body, text first."""
    boundary = f"==_bs_{secrets.token_hex(8)}"
    return b"".join(
        (
            multipart_alternative_header(boundary),
            part_header(boundary, "plain"),
            _qp_body(text),
            part_header(boundary, "html"),
            _qp_body(html),
            f"--{boundary}--\r\n".encode(),
        )
    )


def _qp_body(text: str) -> bytes:
    """A part's quoted-printable body, ending with a line break."""
    return qp_piece(text if text.endswith("\n") else text + "\n")


def message_id(kind: str, key: int | str, domain: str) -> str:
    """A Message-ID derived from ids, so a retry of the same message keeps it."""
    return f"<{kind}.{key}@{domain}>"
