"""Quoted-printable and header pieces for building messages as bytes, fast.

The prepared issue is a list of pre-encoded pieces with holes. Every piece and every
value starts at column 0 and ends with a hard or a soft (`=` CRLF) line break, so a
value of any length can be dropped into a hole without re-encoding what surrounds it,
and every encoded line stays within 76 characters (RFC 2045).
"""

from __future__ import annotations

import re
from email.headerregistry import Address

from app.rendering.transactional import SMTP_POLICY

# Bytes that may appear literally in a quoted-printable line: printable ASCII except
# "=", plus space and tab (encoded when they end a line).
_UNSAFE = re.compile(rb"[^\t\x20-\x3c\x3e-\x7e]")
_SAFE_VALUE = re.compile(rb"[\x21-\x3c\x3e-\x7e]*")
_MAX = 76


def _escape(match: re.Match[bytes]) -> bytes:
    return b"=%02X" % match.group(0)[0]


def _wrap(encoded: bytes, *, soft_end: bool) -> bytes:
    """Split one encoded line into lines of at most 76 characters with soft breaks."""
    out: list[bytes] = []
    limit = _MAX - 1 if soft_end else _MAX
    while len(encoded) > limit:
        cut = _MAX - 1
        # Never split an =XX escape.
        if encoded[cut - 1] == 0x3D:
            cut -= 1
        elif encoded[cut - 2] == 0x3D:
            cut -= 2
        out.append(encoded[:cut] + b"=\r\n")
        encoded = encoded[cut:]
    out.append(encoded + (b"=\r\n" if soft_end else b"\r\n"))
    return b"".join(out)


def qp_piece(text: str) -> bytes:
    """Quoted-printable for a piece of a body that starts at column 0.

    Each line break becomes CRLF; if the piece does not end with a line break it ends
    with a soft break, so what follows starts at column 0 and joins it seamlessly.
    """
    lines = text.encode("utf-8").split(b"\n")
    out: list[bytes] = []
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        line = raw.removesuffix(b"\r")
        if i == last and not line:
            break
        encoded = _UNSAFE.sub(_escape, line)
        if i < last and encoded[-1:] in (b" ", b"\t"):
            encoded = encoded[:-1] + (b"=20" if encoded[-1:] == b" " else b"=09")
        out.append(_wrap(encoded, soft_end=i == last))
    return b"".join(out)


def qp_value(value: str) -> bytes:
    """Quoted-printable for a substituted value (no line breaks): ends with a soft break."""
    if not value:
        return b""
    data = value.encode("utf-8")
    if len(data) < _MAX and _SAFE_VALUE.fullmatch(data):
        return data + b"=\r\n"
    return _wrap(_UNSAFE.sub(_escape, data), soft_end=True)


# A display name that can go into a header as is: words of letters, digits, ' and -.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9'\-]+(?: [A-Za-z0-9'\-]+)*")
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def clean_name(name: str) -> str:
    """A display name with any control character or line boundary made a space."""
    return _CONTROL.sub(" ", name).strip() if _CONTROL.search(name) else name.strip()


def address_header(header: str, name: str, email: str) -> bytes:
    """A folded `Header: Name <addr>` line, RFC 2047 encoded as needed, CRLF-terminated."""
    name = clean_name(name)
    if email.isascii():
        if not name:
            return f"{header}: {email}\r\n".encode("ascii")
        if len(name) <= 50 and _PLAIN_NAME.fullmatch(name):
            return f"{header}: {name} <{email}>\r\n".encode("ascii")
        policy = SMTP_POLICY
    else:
        policy = SMTP_POLICY.clone(utf8=True)
    local, _, domain = email.rpartition("@")
    value = policy.header_factory(header, str(Address(name, local, domain)))
    return policy.fold_binary(header, value)


def header_line(header: str, value: str) -> bytes:
    """One header, RFC 2047 encoded and folded by the `email` package's header API."""
    return SMTP_POLICY.fold_binary(header, SMTP_POLICY.header_factory(header, value))
