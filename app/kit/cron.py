"""Cron ticks in a newsletter's own time zone, as UTC instants.

croniter walks *local wall-clock* times (naive datetimes, plain calendar arithmetic);
each wall time is then placed on the UTC time line with zoneinfo. Two rules make that
well defined across daylight-saving changes:

- **Spring forward** (a wall time that does not exist that day, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March): the tick fires once, shifted forward by
  the length of the gap (02:30 -> 03:30 local). A weekly issue is late by an hour
  rather than skipped for a week. If the shifted time coincides with another tick,
  they are one tick.
- **Fall back** (a wall time that happens twice, e.g. 01:30 in America/New_York on the
  first Sunday of November): the tick fires once, at the first occurrence. Every wall
  time the expression names fires exactly once, so a schedule finer than an hour has
  no ticks during the repeated hour.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

# The longest backwards step a DST gap can put between consecutive wall times on the UTC
# line. Real gaps are one hour (Lord Howe: 30 minutes, Antarctica/Troll: two hours).
_GAP_SLACK = timedelta(hours=3)
_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# croniter's Jenkins-style `H` (hashed) and `R` (random) make a tick depend on the
# process that computes it; every process must agree on the ticks, so they are refused.
_HASHED_OR_RANDOM = re.compile(r"(?:^|[^A-Za-z])[HhRr](?:[^A-Za-z]|$)")


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One cron tick: the UTC instant it fires and the local time it stands for."""

    utc: datetime
    local: datetime


def validate_cron(expr: str) -> str:
    """The expression, trimmed and with single spaces, or CronError saying what is wrong.

    Five fields (minute hour day-of-month month day-of-week, names like MON allowed) or
    one of @hourly, @daily, @weekly, @monthly, @yearly.
    """
    text = " ".join(expr.split())
    if not text:
        raise CronError("a cron expression is required, e.g. '0 9 * * MON'")
    if text.startswith("@"):
        if text.lower() not in _ALIASES:
            raise CronError(f"unknown alias {text!r}; use @hourly, @daily, @weekly, @monthly")
        text = text.lower()
    else:
        fields = text.split(" ")
        if len(fields) != 5:
            raise CronError(
                f"expected five fields (minute hour day month weekday), got {len(fields)}"
            )
        if any(_HASHED_OR_RANDOM.search(field) for field in fields):
            raise CronError("H and R (hashed or random) fields are not supported")
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError as exc:
        # croniter's message for an impossible date is not helpful on its own.
        if "find next date" in str(exc):
            raise CronError("never fires (no date matches it)") from None
        raise CronError(f"not a valid cron expression: {exc}") from None
    return text


def validate_timezone(name: str) -> str:
    """The IANA zone name, or CronError. `localtime` is refused: it depends on the host."""
    name = name.strip()
    if name == "localtime" or name not in _zone_names():
        raise CronError(f"unknown time zone {name!r}; use an IANA name like Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - listed but unreadable
        raise CronError(f"unknown time zone {name!r}") from None
    return name


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous wall time is its first occurrence; a wall time inside a gap is
    # read with the offset in force before the gap, which lands it `gap` later in local
    # time (02:30 -> 03:30) -- the two rules in the module docstring.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def iter_ticks(expr: str, tz: str, after: datetime) -> Iterator[Tick]:
    """Ticks strictly after `after` (aware), in ascending UTC order, without end."""
    if after.tzinfo is None:
        raise ValueError("`after` must be timezone-aware")
    zone = _zone(tz)
    after = after.astimezone(UTC)
    # A tick shifted by a gap can fire (in UTC) after wall times later than its own, so
    # the walk starts a gap's length early and candidates wait in a heap until the walk
    # is a gap's length past them: nothing generated later can then come before them.
    cron = croniter(expr, after.astimezone(zone).replace(tzinfo=None) - _GAP_SLACK)
    pending: list[datetime] = []
    last = after
    frontier = after
    while True:
        while pending and frontier - pending[0] >= _GAP_SLACK:
            utc = heapq.heappop(pending)
            last = utc
            yield Tick(utc=utc, local=utc.astimezone(zone))
        utc = _to_utc(cron.get_next(datetime), zone)
        frontier = max(frontier, utc)
        if utc > last and utc not in pending:
            heapq.heappush(pending, utc)


def next_ticks(expr: str, tz: str, after: datetime, n: int) -> list[Tick]:
    """The first `n` ticks strictly after `after`."""
    return list(itertools.islice(iter_ticks(expr, tz, after), n))


def ticks_between(expr: str, tz: str, after: datetime, until: datetime) -> Iterator[Tick]:
    """Ticks in (`after`, `until`], ascending."""
    return itertools.takewhile(lambda tick: tick.utc <= until, iter_ticks(expr, tz, after))
