"""Every setting of the service, read once from the environment (prefix BROADSHEET_) and `.env`.

A bad value stops start-up with one line naming the setting: see `load_settings()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./var/broadsheet.db"
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it in one line."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """One SMTP server parsed from SMTP_URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool
    validate_certs: bool

    def describe(self) -> str:
        """Host and port with no credentials, for logs."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    seconds: int


def parse_smtp_url(value: str) -> SmtpTarget:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("scheme must be smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("a host is required")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit else 25)
    except ValueError as exc:
        raise ValueError("invalid port") from exc
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=query.get("starttls", "false") in ("1", "true", "yes"),
        validate_certs=query.get("verify", "true") not in ("0", "false", "no"),
    )


def parse_rate(value: str) -> RateLimit:
    match = _RATE_RE.match(value)
    if not match:
        raise ValueError("expected N/second, N/minute, N/hour or N/day")
    return RateLimit(int(match.group(1)), _RATE_UNITS[match.group(2)])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BROADSHEET_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = DEFAULT_SQLITE_URL
    smtp_url: str = "smtp://127.0.0.1:1025"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    send_rate: float = Field(default=0, ge=0)
    smtp_pool_size: int = Field(default=8, ge=1, le=256)
    smtp_max_connections: int = Field(default=32, ge=1, le=1024)
    smtp_pipelining: bool = True
    smtp_timeout_seconds: float = Field(default=30, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_seconds: float = Field(default=60, ge=0)
    lease_seconds: float = Field(default=60, gt=0)
    batch_size: int = Field(default=500, ge=1, le=10000)
    domain_rates: str = ""
    warmup: str = ""
    subscribe_rate_limit: str = "10/minute"
    subscribe_address_limit: str = "3/hour"
    confirm_token_max_age_seconds: int = Field(default=7 * 86400, gt=0)
    admin_api_key: str | None = None
    webhook_secret: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key_file: Path | None = None
    templates_dir: Path | None = None
    schedule_grace_hours: float = Field(default=6, ge=0)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_import_bytes: int = Field(default=200_000_000, ge=1024)
    trusted_proxies: str = ""
    smtputf8: bool = False
    previous_secret_keys: str = ""
    log_level: str = "INFO"
    # The dashboard (SPEC section 11): idle sessions end, failed logins are limited.
    session_idle_hours: float = Field(default=12, gt=0, le=24 * 90)
    login_rate_limit: str = "10/minute"
    login_address_limit: str = "20/hour"
    # The sender of the dashboard's own mail (password resets); default noreply@BASE_URL host.
    system_from: str = ""
    dev: bool = False

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not (
            value.startswith("sqlite+aiosqlite://") or value.startswith("postgresql+asyncpg://")
        ):
            raise ValueError("must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        for item in value.split(","):
            parse_smtp_url(item)
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator(
        "subscribe_rate_limit", "subscribe_address_limit", "login_rate_limit", "login_address_limit"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("domain_rates")
    @classmethod
    def _domain_rates(cls, value: str) -> str:
        _parse_domain_rates(value)
        return value

    @field_validator("warmup")
    @classmethod
    def _warmup(cls, value: str) -> str:
        _parse_warmup(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if not self.dev and len(self.secret_key) < 16:
            raise ValueError("secret_key: required outside dev, at least 16 characters")
        dkim = (self.dkim_selector, self.dkim_domain, self.dkim_private_key_file)
        if any(dkim) and not all(dkim):
            raise ValueError("dkim_selector, dkim_domain and dkim_private_key_file go together")
        if self.dkim_private_key_file and not self.dkim_private_key_file.is_file():
            raise ValueError("dkim_private_key_file: no such file")
        if self.admin_api_key is not None and len(self.admin_api_key) < 20:
            raise ValueError("admin_api_key: at least 20 characters")
        return self

    @cached_property
    def smtp_targets(self) -> list[SmtpTarget]:
        return [parse_smtp_url(item) for item in self.smtp_url.split(",")]

    @cached_property
    def subscribe_rate(self) -> RateLimit:
        return parse_rate(self.subscribe_rate_limit)

    @cached_property
    def subscribe_address_rate(self) -> RateLimit:
        return parse_rate(self.subscribe_address_limit)

    @cached_property
    def login_rate(self) -> RateLimit:
        return parse_rate(self.login_rate_limit)

    @cached_property
    def login_address_rate(self) -> RateLimit:
        return parse_rate(self.login_address_limit)

    @property
    def system_sender(self) -> str:
        return self.system_from or f"noreply@{self.base_host}"

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @cached_property
    def domain_rate_caps(self) -> dict[str, float]:
        return _parse_domain_rates(self.domain_rates)

    @cached_property
    def warmup_caps(self) -> list[int]:
        """WARMUP's daily caps, day 1 first (the last holds after); empty when off."""
        return _parse_warmup(self.warmup)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_host(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"

    @property
    def previous_secrets(self) -> list[bytes]:
        return [key.strip().encode() for key in self.previous_secret_keys.split(",") if key.strip()]

    @property
    def secret(self) -> bytes:
        # In dev without a configured key a fixed, clearly-marked key keeps tokens stable
        # across restarts of the demo; outside dev the validator above requires one.
        return (self.secret_key or "broadsheet-dev-only-secret-key").encode()


def _parse_domain_rates(value: str) -> dict[str, float]:
    """`gmail.com=50,yahoo.com=20` -> {"gmail.com": 50.0, ...}."""
    caps: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        domain, sep, rate = item.partition("=")
        domain = domain.strip().lower()
        if not sep or not domain:
            raise ValueError(f"expected domain=rate pairs separated by commas, got {item!r}")
        if "@" in domain or any(c.isspace() for c in domain):
            raise ValueError(f"{domain!r} is not a domain (write gmail.com, not an address)")
        try:
            per_second = float(rate)
        except ValueError:
            per_second = -1.0
        if not per_second > 0 or per_second == float("inf"):
            raise ValueError(
                f"the rate of {domain} must be a positive number of messages per second, "
                f"got {rate.strip()!r}"
            )
        caps[domain] = per_second
    return caps


def _parse_warmup(value: str) -> list[int]:
    """`1000,2000,5000` -> [1000, 2000, 5000]: each day's cap, counted from the first send."""
    caps: list[int] = []
    for day, item in enumerate((part.strip() for part in value.split(",") if value.strip()), 1):
        if not re.fullmatch(r"[0-9]+", item) or int(item) < 1:
            raise ValueError(
                f"day {day}: expected a whole number of messages of at least 1, got {item!r} "
                "(WARMUP is daily caps separated by commas, e.g. 1000,2000,5000,10000,20000)"
            )
        caps.append(int(item))
    return caps


def base_url_warning(base_url: str, *, dev: bool) -> str | None:
    """Why a BASE_URL that is not https is a problem outside dev, in one line; else None.

    Every email's List-Unsubscribe-Post one-click URL is built from BASE_URL, and RFC 8058
    requires it to be https: mail clients (Gmail, Yahoo) ignore an http one and show no
    unsubscribe button. `broadsheet dev` runs on http by design, so it is not warned.
    """
    if dev or urlsplit(base_url).scheme == "https":
        return None
    return (
        f"BROADSHEET_BASE_URL is {base_url}, not https: one-click unsubscribe (RFC 8058) "
        "needs an https URL, so mail clients will not offer it; set an https BASE_URL"
    )


def startup_warnings(settings: Settings) -> list[str]:
    """Settings that start but will not work well; `serve` and `worker` log each once."""
    warning = base_url_warning(settings.base_url, dev=settings.dev)
    return [warning] if warning else []


def load_settings(**overrides: object) -> Settings:
    """Build the settings or raise SettingsError with one line naming the bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        name = (loc or message.split(":", 1)[0]).upper()
        if not loc and ":" in message:
            message = message.split(":", 1)[1].strip()
        raise SettingsError(f"BROADSHEET_{name}: {message}") from None
