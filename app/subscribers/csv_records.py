"""CSV records from a stream of bytes, in bounded memory, by the `csv` module's rules.

The bytes are cut into physical lines, and lines are grouped into records with the same
quoting rules as the `csv` module (so a quoted field may hold newlines). A line or a
record that is absurdly long is reported and dropped as it streams by, never held whole.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from app.kit.errors import Invalid

MAX_LINE_BYTES = 64 * 1024  # one physical line
MAX_RECORD_BYTES = 128 * 1024  # one record, which quoted newlines may spread over lines

_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_TOO_LONG = object()  # marker for a physical line over MAX_LINE_BYTES


async def _physical_lines(
    chunks: AsyncIterable[bytes], progress: Callable[[int], None] | None
) -> AsyncIterator[bytes | object]:
    """Lines (with their "\\n"), or _TOO_LONG for a line that is absurdly long.

    A line is never held whole beyond MAX_LINE_BYTES: an overlong one is dropped as it
    streams by and reported once.
    """
    tail = b""
    skipping = False
    async for chunk in chunks:
        if progress is not None:
            progress(len(chunk))
        if not chunk:
            continue
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        for part in parts:
            if skipping:  # the end of a line already reported as too long
                skipping = False
                continue
            yield _TOO_LONG if len(part) > MAX_LINE_BYTES else part + b"\n"
        if len(tail) > MAX_LINE_BYTES:
            if not skipping:
                yield _TOO_LONG
            skipping = True
            tail = b""
    if tail and not skipping:
        yield tail


def _ends_in_quotes(text: str, in_quotes: bool) -> bool:
    """Whether a record continues past this line, by the `csv` module's quoting rules.

    A quote opens a quoted field only as a field's first character; inside, a doubled
    quote is a literal one; elsewhere quotes are plain characters.
    """
    if not in_quotes and '"' not in text:
        return False
    i, n = 0, len(text)
    at_field_start = not in_quotes
    while i < n:
        if in_quotes:
            j = text.find('"', i)
            if j == -1:
                return True
            if j + 1 < n and text[j + 1] == '"':
                i = j + 2
                continue
            in_quotes, at_field_start, i = False, False, j + 1
        elif at_field_start and text[i] == '"':
            in_quotes, i = True, i + 1
        else:
            j = text.find(",", i)
            if j == -1:
                return False
            i, at_field_start = j + 1, True
    return in_quotes


@dataclass(slots=True)
class Record:
    line: int
    cells: list[str]
    bad_utf8: bool


def _decode(raw: bytes, *, first: bool) -> tuple[str, int, bool]:
    """(the line's text, its length in bytes, whether it was valid UTF-8).

    The first line may start with a byte order mark: UTF-8's is dropped, a UTF-16 one
    means the whole file is in an encoding we do not read.
    """
    if first:
        if raw.startswith(_UTF16_BOMS):
            raise Invalid("file", "the file is UTF-16 text; save it as CSV UTF-8")
        raw = raw.removeprefix(_UTF8_BOM)
    try:
        return raw.decode("utf-8"), len(raw), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), len(raw), False


async def records(
    chunks: AsyncIterable[bytes],
    invalid: Callable[[int, str], None],
    progress: Callable[[int], None] | None,
) -> AsyncIterator[Record]:
    lineno = 0
    lines: list[str] = []
    start = 0
    size = 0
    in_quotes = False
    bad_utf8 = False
    async for raw in _physical_lines(chunks, progress):
        lineno += 1
        if raw is _TOO_LONG:
            if lines:
                invalid(start, "a quoted field is not closed")
                lines, size, in_quotes, bad_utf8 = [], 0, False, False
            invalid(lineno, f"line is longer than {MAX_LINE_BYTES} bytes")
            continue
        assert isinstance(raw, bytes)
        text, length, valid = _decode(raw, first=lineno == 1)
        bad_utf8 = bad_utf8 or not valid
        if not lines:
            start = lineno
        lines.append(text)
        size += length
        in_quotes = _ends_in_quotes(text, in_quotes)
        if in_quotes:
            if size > MAX_RECORD_BYTES:
                invalid(start, "a quoted field is not closed or is too long")
                lines, size, in_quotes, bad_utf8 = [], 0, False, False
            continue
        try:
            rows = list(csv.reader(lines))
        except csv.Error as exc:
            invalid(start, f"cannot read this line as CSV: {exc}")
            rows = []
        for row in rows:
            yield Record(start, row, bad_utf8)
        lines, size, bad_utf8 = [], 0, False
    if lines:
        invalid(start, "a quoted field is not closed at the end of the file")
