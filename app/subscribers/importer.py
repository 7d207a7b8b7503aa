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

import json
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.addresses import AddressError, normalise_email
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.errors import Invalid
from app.kit.text import has_line_break
from app.models import SubscriptionStatus
from app.subscribers import import_repository
from app.subscribers.csv_records import Record, records
from app.subscribers.schemas import MAX_ATTRIBUTES_JSON

BATCH_SIZE = 1000
MAX_INVALID_LISTED = 1000
MAX_NAME = 200
MAX_ATTRIBUTE_VALUE = 2000
# Columns of our own export that are not attributes (so an export imports cleanly).
IGNORED_COLUMNS = frozenset({"status", "source", "created_at", "confirmed_at", "unsubscribed_at"})


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


@dataclass(slots=True)
class _Header:
    email: int
    name: int | None
    attributes_json: int | None
    attributes: list[tuple[int, str]]


def _parse_header(record: Record) -> _Header:
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


def _attributes(cells: list[str], header: _Header) -> dict[str, Any] | str:
    """A row's attributes (its JSON column, then the other columns), or why they are invalid."""
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
    return attributes


def _parse_row(record: Record, header: _Header, allow_utf8_local: bool) -> _Row | str:
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
    attributes = _attributes(cells, header)
    if isinstance(attributes, str):
        return attributes
    return _Row(record.line, email, name, attributes)


async def _update_existing(
    session: AsyncSession, batch: dict[str, _Row], wanted: list[str], now: datetime
) -> tuple[dict[str, int], set[str]]:
    """(ids of the subscribers that exist, the addresses whose name or attributes changed).

    A row's name replaces the stored one only when given; its attributes are merged over
    the stored ones. The changed rows are written in one bulk UPDATE.
    """
    existing = await import_repository.subscribers_by_email(session, wanted)
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
        await import_repository.update_subscribers(session, changes)
    return {email: row.id for email, row in existing.items()}, changed


async def _insert_new(
    session: AsyncSession, batch: dict[str, _Row], new: list[str], now: datetime
) -> dict[str, int]:
    """Insert the subscribers of `new`; the ids of all of them, new or raced."""
    ids = await import_repository.insert_subscribers(
        session,
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
    raced = [email for email in new if email not in ids]
    if raced:  # inserted by a concurrent request since the subscribers were read
        ids.update(await import_repository.subscriber_ids(session, raced))
    return ids


def _subscription_values(
    newsletter_id: int, subscriber_id: int, consent_text: str, now: datetime
) -> dict[str, Any]:
    return {
        "newsletter_id": newsletter_id,
        "subscriber_id": subscriber_id,
        "status": SubscriptionStatus.active.value,
        "source": "import",
        "consent_text": consent_text,
        "requested_at": now,
        "soft_bounces": 0,
        "created_at": now,
        "updated_at": now,
    }


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
    suppressed = await import_repository.suppressed_among(session, emails)
    wanted = [email for email in emails if email not in suppressed]
    if not wanted:
        return 0, 0
    ids, changed = await _update_existing(session, batch, wanted, now)
    new = [email for email in wanted if email not in ids]
    if new:
        ids.update(await _insert_new(session, batch, new, now))
    values = [
        _subscription_values(newsletter_id, ids[email], consent_text, now)
        for email in wanted
        if email in ids
    ]
    added = await import_repository.insert_subscriptions(session, values) if values else set()
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

    async for record in records(chunks, report.add_invalid, progress):
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
