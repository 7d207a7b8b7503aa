"""Cron ticks in the newsletter's zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.kit.cron import (
    CronError,
    next_ticks,
    ticks_between,
    validate_cron,
    validate_timezone,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local_times(expr: str, tz: str, after: datetime, n: int) -> list[str]:
    return [tick.local.isoformat() for tick in next_ticks(expr, tz, after, n)]


def test_weekly_tick_is_nine_local_time_in_winter_and_summer() -> None:
    winter = next_ticks("0 9 * * MON", "Europe/Berlin", utc(2026, 11, 25), 1)[0]
    summer = next_ticks("0 9 * * MON", "Europe/Berlin", utc(2026, 6, 1, 12), 1)[0]
    assert winter.utc == utc(2026, 11, 30, 8)
    assert winter.local.isoformat() == "2026-11-30T09:00:00+01:00"
    assert summer.utc == utc(2026, 6, 8, 7)
    assert summer.local.isoformat() == "2026-06-08T09:00:00+02:00"


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        pytest.param(
            # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 3, 27, 12),
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
            id="berlin spring-forward fires the missing 02:30 tick once an hour later",
        ),
        pytest.param(
            # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT.
            "30 2 * * *",
            "America/New_York",
            utc(2026, 3, 7, 12),
            ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
            id="new york spring-forward fires the missing 02:30 tick once an hour later",
        ),
    ],
)
def test_spring_forward_fires_a_missing_tick_once_an_hour_later(
    expr: str, tz: str, after: datetime, expected: list[str]
) -> None:
    assert local_times(expr, tz, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "tz", "start", "end", "expected"),
    [
        pytest.param(
            # 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 10, 24, 12),
            utc(2026, 10, 26, 12),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
            id="berlin fall-back fires the repeated 02:30 tick once at its first occurrence",
        ),
        pytest.param(
            # 2026-11-01 in New York: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
            "30 1 * * *",
            "America/New_York",
            utc(2026, 10, 31, 12),
            utc(2026, 11, 2, 0),
            ["2026-11-01T01:30:00-04:00"],
            id="new york fall-back fires the repeated 01:30 tick once at its first occurrence",
        ),
    ],
)
def test_fall_back_fires_a_repeated_tick_once_at_its_first_occurrence(
    expr: str, tz: str, start: datetime, end: datetime, expected: list[str]
) -> None:
    # A local time with its offset names one instant, so this also pins the UTC tick.
    assert [t.local.isoformat() for t in ticks_between(expr, tz, start, end)] == expected


def test_a_pass_during_the_repeated_hour_does_not_fire_the_tick_again() -> None:
    # 06:10 UTC is 01:10 EST, inside the second 01:00-02:00 of the night.
    after_first_occurrence = utc(2026, 11, 1, 6, 10)
    ticks = next_ticks("30 1 * * *", "America/New_York", after_first_occurrence, 1)
    assert ticks[0].local.isoformat() == "2026-11-02T01:30:00-05:00"


def test_a_pass_just_after_a_shifted_tick_was_due_still_sees_it() -> None:
    # Berlin 03:10 CEST on the spring-forward day: the shifted 02:30 tick (03:30) is next.
    ticks = next_ticks("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1, 10), 1)
    assert ticks[0].utc == utc(2026, 3, 29, 1, 30)


def test_every_fifteen_minutes_has_no_duplicate_or_backwards_ticks_across_spring_forward() -> None:
    ticks = list(
        ticks_between("*/15 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))
    )
    instants = [t.utc for t in ticks]
    assert instants == sorted(set(instants))
    assert [t.local.strftime("%H:%M%z") for t in ticks] == [
        "01:15+0100",
        "01:30+0100",
        "01:45+0100",
        "03:00+0200",
        "03:15+0200",
        "03:30+0200",
        "03:45+0200",
        "04:00+0200",
    ]


def test_a_shifted_tick_and_a_real_tick_at_the_same_instant_are_one_tick() -> None:
    ticks = next_ticks("30 2,3 * * *", "Europe/Berlin", utc(2026, 3, 29, 0), 2)
    assert [t.local.isoformat() for t in ticks] == [
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_ticks_are_strictly_after_the_given_instant() -> None:
    ticks = next_ticks("0 9 * * MON", "UTC", utc(2026, 11, 30, 9), 1)
    assert ticks[0].utc == utc(2026, 12, 7, 9)


@pytest.mark.parametrize(
    ("expr", "normal"),
    [("0 9 * * MON", "0 9 * * MON"), ("  0  9 * *   1 ", "0 9 * * 1"), ("@Weekly", "@weekly")],
)
def test_valid_cron_expressions_are_normalised(expr: str, normal: str) -> None:
    assert validate_cron(expr) == normal


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "required"),
        ("0 9 * *", "five fields"),
        ("0 0 9 * * MON", "five fields"),
        ("61 * * * *", "not a valid"),
        ("0 0 30 2 *", "never fires"),
        ("H 9 * * *", "hashed or random"),
        ("R 9 * * *", "hashed or random"),
        ("@reboot", "unknown alias"),
    ],
)
def test_invalid_cron_expressions_are_refused_with_a_reason(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        validate_cron(expr)


def test_time_zones_must_be_iana_names() -> None:
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("Mars/Olympus", "localtime", "../../etc/passwd", ""):
        with pytest.raises(CronError, match="unknown time zone"):
            validate_timezone(bad)
