"""Validation of text that may reach an email header or a page.

Nothing a user typed can add a header (SPEC section 6): any line boundary that
`str.splitlines()` or an SMTP server might honour is refused, together with the other
C0 control characters, before the value is stored.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# CR, LF, NUL, VT, FF, FS, GS, RS, NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR, and every
# other C0 control except TAB, plus DEL.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# Control characters that are also refused in multi-line fields (Markdown bodies keep
# their newlines and tabs, but never NUL and friends).
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# An RFC 2047 encoded word (`=?charset?q?...?=`). The `email` package decodes these when
# a header is set and, on Python before 3.11.10 / 3.12.5 (CVE-2024-6923), writes a decoded
# CR or LF back out raw: `=?UTF-8?Q?=0A?=Bcc: x@evil.example` becomes a Bcc header. Nobody
# types an encoded word by accident, so one-line values and addresses refuse them.
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bq]\?[^?]*\?=", re.IGNORECASE)


def has_line_break(value: str) -> bool:
    return _FORBIDDEN.search(value) is not None


def has_encoded_word(value: str) -> bool:
    return _ENCODED_WORD.search(value) is not None


def check_single_line(value: str) -> str:
    if _FORBIDDEN.search(value):
        raise ValueError("must not contain line breaks or control characters")
    if _ENCODED_WORD.search(value):
        raise ValueError("must not contain an encoded word (=?charset?q?...?=)")
    return value.strip()


def check_multiline(value: str) -> str:
    if _FORBIDDEN_MULTILINE.search(value):
        raise ValueError("must not contain control characters")
    return value.replace("\r\n", "\n").replace("\r", "\n")


# A one-line value that may end up in a header: subject, names, preheader, title.
SingleLine = Annotated[str, AfterValidator(check_single_line)]
NonEmptyLine = Annotated[str, AfterValidator(check_single_line), StringConstraints(min_length=1)]
MultiLine = Annotated[str, AfterValidator(check_multiline)]
