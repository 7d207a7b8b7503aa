"""CSV import of subscribers, streamed: bounded memory however large the file.

The bytes arrive in chunks (an HTTP body, an uploaded file, a file on disk). They are
cut into physical lines, lines are grouped into CSV records with the same quoting rules
as the `csv` module (so a quoted field may hold newlines), each record is validated, and
valid rows are written in batches, each batch in its own short transaction:

- one SELECT of the batch's suppressed addresses (skipped),
- one SELECT of the subscribers that exist, one bulk UPDATE of those whose name or
  attributes change, one INSERT .. ON CONFLICT DO NOTHING of the new ones,
- one INSERT .. ON CONFLICT DO NOTHING .. RETURNING of the subscriptions (active, source
  "import"): the rows it returns are the new ones, the others were subscribed already.

An existing subscription keeps its status: an import never re-subscribes someone who
left. Importing the same file twice therefore changes nothing the second time.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.addresses import AddressError, normalise_email
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.errors import Invalid
from app.kit.sql import dialect_insert
from app.kit.text import has_line_break
from app.models import Subscriber, Subscription, SubscriptionStatus, Suppression
from app.subscribers.schemas import MAX_ATTRIBUTES_JSON

BATCH_SIZE = 1000
MAX_LINE_BYTES = 64 * 1024  # one physical line
MAX_RECORD_BYTES = 128 * 1024  # one record, which quoted newlines may spread over lines
MAX_INVALID_LISTED = 1000
MAX_NAME = 200
MAX_ATTRIBUTE_VALUE = 2000
# Columns of our own export that are not attributes (so an export imports cleanly).
IGNORED_COLUMNS = frozenset({"status", "source", "created_at", "confirmed_at", "unsubscribed_at"})

_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_TOO_LONG = object()  # marker for a physical line over MAX_LINE_BYTES


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    rows: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    invalid_count: int = 0

    def add_invalid(self, line: int, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < MAX_INVALID_LISTED:
            self.invalid.append({"line": line, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "invalid": self.invalid,
            "invalid_count": self.invalid_count,
            "rows": self.rows,
        }


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    name: str
    attributes: dict[str, Any]


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
class _Record:
    line: int
    cells: list[str]
    bad_utf8: bool


async def _records(
    chunks: AsyncIterable[bytes], report: ImportReport, progress: Callable[[int], None] | None
) -> AsyncIterator[_Record]:
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
                report.add_invalid(start, "a quoted field is not closed")
                lines, size, in_quotes, bad_utf8 = [], 0, False, False
            report.add_invalid(lineno, f"line is longer than {MAX_LINE_BYTES} bytes")
            continue
        assert isinstance(raw, bytes)
        if lineno == 1:
            if raw.startswith(_UTF16_BOMS):
                raise Invalid("file", "the file is UTF-16 text; save it as CSV UTF-8")
            raw = raw.removeprefix(_UTF8_BOM)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogateescape")
            bad_utf8 = True
        if not lines:
            start = lineno
        lines.append(text)
        size += len(raw)
        in_quotes = _ends_in_quotes(text, in_quotes)
        if in_quotes:
            if size > MAX_RECORD_BYTES:
                report.add_invalid(start, "a quoted field is not closed or is too long")
                lines, size, in_quotes, bad_utf8 = [], 0, False, False
            continue
        try:
            rows = list(csv.reader(lines))
        except csv.Error as exc:
            report.add_invalid(start, f"cannot read this line as CSV: {exc}")
            rows = []
        for row in rows:
            yield _Record(start, row, bad_utf8)
        lines, size, bad_utf8 = [], 0, False
    if lines:
        report.add_invalid(start, "a quoted field is not closed at the end of the file")


@dataclass(slots=True)
class _Header:
    email: int
    name: int | None
    attributes_json: int | None
    attributes: list[tuple[int, str]]


def _parse_header(record: _Record) -> _Header:
    if record.bad_utf8:
        raise Invalid("file", "the header row is not UTF-8 text; save the file as CSV UTF-8")
    names = [cell.strip() for cell in record.cells]
    lowered = [name.lower() for name in names]
    if "email" not in lowered:
        found = ", ".join(repr(n) for n in names[:10] if n) or "nothing"
        raise Invalid("file", f"the header row has no 'email' column (found {found})")
    attributes = []
    for index, (name, low) in enumerate(zip(names, lowered, strict=True)):
        if low in ("email", "name", "attributes") or low in IGNORED_COLUMNS or not name:
            continue
        if has_line_break(name) or len(name) > 100:
            raise Invalid("file", f"column {index + 1} of the header row is not a valid name")
        attributes.append((index, name))
    return _Header(
        email=lowered.index("email"),
        name=lowered.index("name") if "name" in lowered else None,
        attributes_json=lowered.index("attributes") if "attributes" in lowered else None,
        attributes=attributes,
    )


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _parse_row(record: _Record, header: _Header, allow_utf8_local: bool) -> _Row | str:
    """A valid row, or the reason it is invalid."""
    if record.bad_utf8:
        return "is not valid UTF-8 text"
    cells = record.cells
    try:
        email = normalise_email(_cell(cells, header.email), allow_utf8_local=allow_utf8_local)
    except AddressError as exc:
        return f"email: {exc}"
    name = _cell(cells, header.name).strip()
    if has_line_break(name):
        return "name: must not contain line breaks or control characters"
    if len(name) > MAX_NAME:
        return f"name: longer than {MAX_NAME} characters"
    attributes: dict[str, Any] = {}
    raw_json = _cell(cells, header.attributes_json).strip()
    if raw_json:
        try:
            parsed = json.loads(raw_json)
        except ValueError:
            return "attributes: is not valid JSON"
        if not isinstance(parsed, dict):
            return "attributes: must be a JSON object"
        attributes.update(parsed)
    for index, key in header.attributes:
        value = _cell(cells, index)
        if value:
            if len(value) > MAX_ATTRIBUTE_VALUE:
                return f"{key}: longer than {MAX_ATTRIBUTE_VALUE} characters"
            attributes[key] = value
    if attributes and len(json.dumps(attributes)) > MAX_ATTRIBUTES_JSON:
        return f"attributes: more than {MAX_ATTRIBUTES_JSON} characters together"
    return _Row(record.line, email, name, attributes)


_SUBSCRIBER = cast(Table, Subscriber.__table__)
_SUBSCRIPTION = cast(Table, Subscription.__table__)


async def _write_batch(
    session: AsyncSession,
    *,
    newsletter_id: int,
    batch: dict[str, _Row],
    consent_text: str,
    now: datetime,
) -> tuple[int, int]:
    """Write one batch; (created, updated). Everything else in the batch is skipped."""
    emails = list(batch)
    suppressed = set(
        (
            await session.execute(select(Suppression.email).where(Suppression.email.in_(emails)))
        ).scalars()
    )
    wanted = [email for email in emails if email not in suppressed]
    if not wanted:
        return 0, 0
    existing = {
        row.email: row
        for row in await session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.attributes).where(
                Subscriber.email.in_(wanted)
            )
        )
    }
    ids: dict[str, int] = {email: row.id for email, row in existing.items()}
    changes: list[dict[str, Any]] = []
    changed: set[str] = set()
    for email, row in existing.items():
        item = batch[email]
        name = item.name or row.name
        attributes = {**(row.attributes or {}), **item.attributes}
        if name != row.name or attributes != (row.attributes or {}):
            changes.append(
                {"id": row.id, "name": name, "attributes": attributes, "updated_at": now}
            )
            changed.add(email)
    if changes:
        await session.execute(update(Subscriber), changes)
    new = [email for email in wanted if email not in existing]
    if new:
        inserted = await session.execute(
            dialect_insert(session, _SUBSCRIBER)
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(_SUBSCRIBER.c.id, _SUBSCRIBER.c.email),
            [
                {
                    "email": email,
                    "name": batch[email].name,
                    "attributes": batch[email].attributes,
                    "created_at": now,
                    "updated_at": now,
                }
                for email in new
            ],
        )
        for row in inserted:
            ids[row.email] = row.id
        raced = [email for email in new if email not in ids]
        if raced:  # inserted by a concurrent request since the SELECT above
            for row in await session.execute(
                select(Subscriber.id, Subscriber.email).where(Subscriber.email.in_(raced))
            ):
                ids[row.email] = row.id
    # No SELECT of who is already subscribed: the INSERT's conflict check on the unique
    # (newsletter, subscriber) index answers that, and RETURNING names the rows it added.
    # (A SELECT by `subscriber_id IN (...)` was planned against stale statistics while
    # the table grew under the import, and went quadratic on PostgreSQL.)
    values = [
        {
            "newsletter_id": newsletter_id,
            "subscriber_id": ids[email],
            "status": SubscriptionStatus.active.value,
            "source": "import",
            "consent_text": consent_text,
            "requested_at": now,
            "soft_bounces": 0,
            "created_at": now,
            "updated_at": now,
        }
        for email in wanted
        if email in ids
    ]
    added: set[int] = set()
    if values:
        result = await session.execute(
            dialect_insert(session, _SUBSCRIPTION)
            .on_conflict_do_nothing(index_elements=["newsletter_id", "subscriber_id"])
            .returning(_SUBSCRIPTION.c.subscriber_id),
            values,
        )
        added = set(result.scalars())
    created = len(added)
    updated = sum(1 for email in changed if ids[email] not in added)
    return created, updated


async def import_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    chunks: AsyncIterable[bytes],
    *,
    newsletter_id: int,
    consent_text: str,
    allow_utf8_local: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV streamed as `chunks` of bytes into one newsletter.

    Raises Invalid (422) for a file that cannot be imported at all (no header, no email
    column, not UTF-8 text) before anything is written; bad rows are reported by line.
    """
    report = ImportReport()
    header: _Header | None = None
    batch: dict[str, _Row] = {}

    async def flush() -> None:
        if not batch:
            return
        async with unit_of_work(sessionmaker) as session:
            created, updated = await _write_batch(
                session,
                newsletter_id=newsletter_id,
                batch=batch,
                consent_text=consent_text,
                now=utcnow(),
            )
        report.created += created
        report.updated += updated
        report.skipped += len(batch) - created - updated
        batch.clear()

    async for record in _records(chunks, report, progress):
        if not any(cell.strip() for cell in record.cells):
            continue  # blank line
        if header is None:
            header = _parse_header(record)
            continue
        report.rows += 1
        parsed = _parse_row(record, header, allow_utf8_local)
        if isinstance(parsed, str):
            report.add_invalid(record.line, parsed)
            continue
        if parsed.email in batch:
            report.skipped += 1  # the same address twice in a file: the last row counts
        batch[parsed.email] = parsed
        if len(batch) >= batch_size:
            await flush()
    if header is None:
        raise Invalid("file", "the file is empty: expected a header row with an 'email' column")
    await flush()
    return report
