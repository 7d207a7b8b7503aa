from __future__ import annotations

import pytest

from app.settings import SettingsError, load_settings, parse_smtp_url


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"smtp_url": "http://mail.example.com"}, "BROADSHEET_SMTP_URL"),
        ({"send_rate": -1}, "BROADSHEET_SEND_RATE"),
        ({"database_url": "mysql://x"}, "BROADSHEET_DATABASE_URL"),
        ({"subscribe_rate_limit": "ten per minute"}, "BROADSHEET_SUBSCRIBE_RATE_LIMIT"),
        ({"base_url": "example.com"}, "BROADSHEET_BASE_URL"),
        ({"secret_key": ""}, "BROADSHEET_SECRET_KEY"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(overrides: dict[str, object], name: str) -> None:
    values: dict[str, object] = {"secret_key": "x" * 32, "_env_file": None, **overrides}
    with pytest.raises(SettingsError) as info:
        load_settings(**values)
    message = str(info.value)
    assert message.startswith(name + ":")
    assert "\n" not in message


def test_smtp_urls_parse_tls_modes_and_credentials() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.implicit_tls, plain.starttls) == (
        "127.0.0.1",
        2525,
        False,
        False,
    )
    tls = parse_smtp_url("smtps://user%40x:p%3Ass@mail.example.com")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (465, True, "user@x", "p:ss")
    assert "p:ss" not in tls.describe()
    starttls = parse_smtp_url("smtp://mail.example.com:587?starttls=true")
    assert starttls.starttls


def test_several_smtp_urls_are_failover_targets() -> None:
    settings = load_settings(
        secret_key="x" * 32, smtp_url="smtp://a.example:25,smtp://b.example:25", _env_file=None
    )
    assert [t.host for t in settings.smtp_targets] == ["a.example", "b.example"]


def test_postgres_urls_get_the_async_driver() -> None:
    settings = load_settings(
        secret_key="x" * 32, database_url="postgresql://u@h/db", _env_file=None
    )
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
