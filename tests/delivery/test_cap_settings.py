"""DOMAIN_RATES and WARMUP: what they accept, and the one line a bad value stops start-up with."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError, load_settings


def settings(**overrides: object) -> Settings:
    return load_settings(secret_key="x" * 32, _env_file=None, **overrides)


def refusal(**overrides: object) -> str:
    with pytest.raises(SettingsError) as info:
        settings(**overrides)
    return str(info.value)


def test_warmup_is_a_list_of_daily_caps_and_off_when_empty() -> None:
    assert settings().warmup_caps == []
    assert settings(warmup=" 1000, 2000,5000 ,10000,20000").warmup_caps == [
        1000,
        2000,
        5000,
        10000,
        20000,
    ]
    assert settings(warmup="50").warmup_caps == [50]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "1000,2k",
            "BROADSHEET_WARMUP: day 2: expected a whole number of messages of at least 1, "
            "got '2k' (WARMUP is daily caps separated by commas, e.g. 1000,2000,5000,10000,20000)",
        ),
        ("0,100", "BROADSHEET_WARMUP: day 1: expected a whole number of messages of at least 1"),
        ("100,,200", "BROADSHEET_WARMUP: day 2: expected a whole number of messages"),
        ("-5", "BROADSHEET_WARMUP: day 1: expected a whole number of messages"),
        ("1.5", "BROADSHEET_WARMUP: day 1: expected a whole number of messages"),
    ],
)
def test_a_bad_warmup_is_refused_naming_the_day(value: str, message: str) -> None:
    line = refusal(warmup=value)
    assert line.startswith(message)
    assert "\n" not in line


def test_domain_rates_are_per_domain_messages_per_second() -> None:
    caps = settings(domain_rates="Gmail.com=50, yahoo.com = 0.5").domain_rate_caps
    assert caps == {"gmail.com": 50.0, "yahoo.com": 0.5}
    assert settings().domain_rate_caps == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gmail.com", "expected domain=rate pairs separated by commas, got 'gmail.com'"),
        ("=5", "expected domain=rate pairs separated by commas, got '=5'"),
        ("x@gmail.com=5", "'x@gmail.com' is not a domain (write gmail.com, not an address)"),
        (
            "gmail.com=fast",
            "the rate of gmail.com must be a positive number of messages per second, got 'fast'",
        ),
        (
            "gmail.com=0",
            "the rate of gmail.com must be a positive number of messages per second, got '0'",
        ),
        (
            "gmail.com=-3",
            "the rate of gmail.com must be a positive number of messages per second, got '-3'",
        ),
        (
            "gmail.com=nan",
            "the rate of gmail.com must be a positive number of messages per second, got 'nan'",
        ),
    ],
)
def test_bad_domain_rates_are_refused_in_one_line(value: str, message: str) -> None:
    assert refusal(domain_rates=value) == f"BROADSHEET_DOMAIN_RATES: {message}"
