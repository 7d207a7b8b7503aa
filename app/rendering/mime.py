"""Quoted-printable and header pieces for building messages as bytes, fast.

The prepared issue is a list of pre-encoded pieces with holes. Every piece and every
value starts at column 0 and ends with a hard or a soft (`=` CRLF) line break, so a
value of any length can be dropped into a hole without re-encoding what surrounds it,
and every encoded line stays within 76 characters (RFC 2045).
"""

from __future__ import annotations

import base64
import re

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
# Printable ASCII that needs no encoding in an unstructured header (no "=?", which a
# reader would take for the start of an encoded word).
_PLAIN_TEXT = re.compile(r"[\t\x20-\x7e]*")
_CONTROL_BUT_TAB = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# UTF-8 bytes per encoded word: base64 of 42 bytes is 56 characters, 68 with the
# "=?utf-8?b?" and "?=" around it, within RFC 2047's 75 (and 78 with "Subject: ").
_WORD_BYTES = 42


def clean_name(name: str) -> str:
    """A display name with any control character or line boundary made a space."""
    return _CONTROL.sub(" ", name).strip() if _CONTROL.search(name) else name.strip()


def encoded_words(text: str) -> list[str]:
    """RFC 2047 base64 encoded words for `text`, each at most 75 characters.

    Spaces stay inside the words (a reader drops whitespace between adjacent encoded
    words); a word is cut after a space where it can be, never inside a character.
    """
    chunks: list[str] = []
    current = ""
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > _WORD_BYTES:
            cut = current.rfind(" ") + 1
            if 0 < cut < len(current):
                chunks.append(current[:cut])
                current = current[cut:]
            else:
                chunks.append(current)
                current = ""
            size = len(current.encode("utf-8"))
        current += char
        size += width
    chunks.append(current)
    return [
        "=?utf-8?b?" + base64.b64encode(c.encode("utf-8")).decode("ascii") + "?=" for c in chunks
    ]


def _fold_plain(header: str, value: str) -> bytes:
    """Fold printable ASCII at spaces so lines stay near 78 characters."""
    lines: list[str] = []
    line = f"{header}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() and not line.endswith(":"):
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def header_line(header: str, value: str) -> bytes:
    """One unstructured header (Subject, List-Id...), RFC 2047 encoded as needed."""
    value = _CONTROL_BUT_TAB.sub(" ", value)
    if _PLAIN_TEXT.fullmatch(value) and "=?" not in value:
        return _fold_plain(header, value)
    folded = "\r\n ".join(encoded_words(value))
    return f"{header}: {folded}\r\n".encode("ascii")


def phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: an atom, a quoted string or encoded words."""
    if len(name) <= 60 and _PLAIN_NAME.fullmatch(name):
        return name
    # Encoded words are kept out of quoted strings: some readers (Python's among them)
    # decode them there too.
    if len(name) <= 200 and _PLAIN_TEXT.fullmatch(name) and "=?" not in name:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "\r\n ".join(encoded_words(name))


def address_header(header: str, name: str, email: str) -> bytes:
    """A `Header: Name <addr>` line, the name quoted or RFC 2047 encoded as needed.

    A non-ASCII address (only with SMTPUTF8) goes out as UTF-8, as RFC 6532 allows.
    """
    name = clean_name(name)
    if not name:
        return f"{header}: {email}\r\n".encode()
    return f"{header}: {phrase(name)} <{email}>\r\n".encode()


def list_id_header(name: str, list_id: str) -> bytes:
    """`List-Id: Name <list-id>` (RFC 2919), the name encoded as a phrase."""
    name = clean_name(name).replace("<", "").replace(">", "").strip()
    if not name:
        return f"List-Id: <{list_id}>\r\n".encode("ascii")
    return f"List-Id: {phrase(name)} <{list_id}>\r\n".encode("ascii")


def multipart_alternative_header(boundary: str) -> bytes:
    """The Content-Type header of a multipart/alternative message, and the blank line."""
    return f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode()


def part_header(boundary: str, subtype: str) -> bytes:
    """The delimiter and headers of a quoted-printable UTF-8 text/`subtype` part.

    Every part is quoted-printable, in which "=" only starts an escape, so a boundary
    that begins with "=_" cannot occur inside a part.
    """
    return (
        f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode()
