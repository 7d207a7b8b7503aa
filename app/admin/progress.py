"""A send's progress as the send view shows it: counts, done, messages/s, ETA.

messages/s is the rate of the last poll interval, not the average since the start: a
send that was paused for an hour, or slowed by a rate cap, shows what it does now. It
comes from two samples of the issue's outcome count (sent + failed + bounced), the one
taken now and the previous one, which rides in the poll's own URL (`done` and `at`,
milliseconds since the epoch). The alternative, counting deliveries sent in the last
N seconds, has no index to read: delivery is indexed by (issue_id, status), not by
sent_at, so the count would visit every sent row of a 1,000,000-recipient send every
two seconds, and a new index would be paid on every outcome the engine writes. The
counts themselves are `delivery.service.stats`, the same as the REST API's.

The samples come from the viewer's browser; a forged one changes only what that viewer
reads. A malformed one is a 422 naming the parameter (`BadQuery`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from app.kit.errors import BroadsheetError
from app.models import IssueStatus

# While an issue is in one of these states its page keeps polling.
LIVE = frozenset({IssueStatus.sending.value, IssueStatus.paused.value})
FINAL = ("sent", "failed", "bounced", "skipped", "cancelled")
ATTEMPTED = ("sent", "failed", "bounced")
# Two samples further apart than this say little about the rate now.
MAX_SAMPLE_AGE_MS = 10 * 60 * 1000
MIN_SAMPLE_GAP_MS = 200
_MAX_COUNT = 2**62


class BadQuery(BroadsheetError):
    """422 naming the query parameter, as a sentence a dashboard page can show."""

    status_code = 422

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"the query parameter {name} {message}")


@dataclass(frozen=True)
class Sample:
    attempted: int
    at_ms: int


@dataclass(frozen=True)
class Progress:
    stats: Mapping[str, Any]
    done: int
    rate: float | None
    eta_seconds: float | None
    sample: Sample

    @property
    def live(self) -> bool:
        return str(self.stats["status"]) in LIVE

    @property
    def status(self) -> str:
        return str(self.stats["status"])

    @property
    def eta(self) -> str:
        return duration(self.eta_seconds)

    def query(self) -> str:
        """The next poll's query: the status shown and this sample."""
        return urlencode(
            {"status": self.status, "done": self.sample.attempted, "at": self.sample.at_ms}
        )


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18 or int(raw) > _MAX_COUNT:
        raise BadQuery(name, "must be a whole number of at most 18 digits")
    return int(raw)


def previous_sample(params: Mapping[str, str]) -> Sample | None:
    """The sample a poll or a refresh link carries (`done`, `at`), or None."""
    attempted = _int_param(params, "done")
    at_ms = _int_param(params, "at")
    if attempted is None or at_ms is None:
        return None
    return Sample(attempted, at_ms)


def shown_status(params: Mapping[str, str]) -> str | None:
    """The status the polling page shows (`status`), checked against the issue states."""
    raw = params.get("status")
    if raw is None or raw == "":
        return None
    if raw not in {state.value for state in IssueStatus}:
        raise BadQuery("status", "must be an issue status")
    return raw


def rate_between(before: Sample | None, now: Sample) -> float | None:
    """Outcomes per second between two samples; None when they say nothing."""
    if before is None:
        return None
    gap = now.at_ms - before.at_ms
    if gap < MIN_SAMPLE_GAP_MS or gap > MAX_SAMPLE_AGE_MS or now.attempted < before.attempted:
        return None
    return (now.attempted - before.attempted) * 1000 / gap


def outcomes(stats: Mapping[str, Any]) -> int:
    """How many deliveries of a send are over, whatever their outcome."""
    return sum(int(stats[name]) for name in FINAL)


def measure(
    stats: Mapping[str, Any], before: Sample | None, *, now_ms: int | None = None
) -> Progress:
    at_ms = int(time.time() * 1000) if now_ms is None else now_ms
    sample = Sample(sum(int(stats[name]) for name in ATTEMPTED), at_ms)
    rate = rate_between(before, sample) if str(stats["status"]) in LIVE else None
    if str(stats["status"]) == IssueStatus.paused.value:
        rate = 0.0
    queued = int(stats["queued"])
    eta = queued / rate if rate else None
    if queued == 0 and int(stats["sending"]) == 0:
        eta = 0.0
    return Progress(stats=stats, done=outcomes(stats), rate=rate, eta_seconds=eta, sample=sample)


def duration(seconds: float | None) -> str:
    """12 -> "12 s", 200 -> "3 min 20 s", 7300 -> "2 h 1 min"; None -> "–"."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
