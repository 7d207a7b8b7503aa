"""A bad setting stops start-up with one line naming it, and exit status 2 (SPEC section 5).
Run as an operator would: `python -m app.cli serve|worker` in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import load_settings, startup_warnings
from tests.factories import wait_healthy
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "BROADSHEET_SECRET_KEY": "startup-test-secret-0123456789",
    "BROADSHEET_SMTP_URL": "smtp://127.0.0.1:1025",
}


def start(command: str, tmp_path: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    clean["BROADSHEET_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    merged = {**clean, **GOOD, **{k: v for k, v in env.items() if v is not None}}
    for key, value in env.items():
        if value is None:
            merged.pop(key, None)
    args = [sys.executable, "-m", "app.cli", command]
    if command == "serve":
        args += ["--port", str(free_port())]
    # cwd is an empty directory, so no .env file is read.
    return subprocess.run(
        args, cwd=tmp_path, env=merged, capture_output=True, text=True, timeout=60, check=False
    )


BAD = [
    ("BROADSHEET_SMTP_URL", "http://x"),
    ("BROADSHEET_SMTP_URL", "smtp://:25"),
    ("BROADSHEET_SEND_RATE", "-1"),
    ("BROADSHEET_SEND_RATE", "fast"),
    ("BROADSHEET_SMTP_POOL_SIZE", "0"),
    ("BROADSHEET_MAX_ATTEMPTS", "0"),
    ("BROADSHEET_LEASE_SECONDS", "0"),
    ("BROADSHEET_DATABASE_URL", "mysql://root@localhost/db"),
    ("BROADSHEET_BASE_URL", "ftp://example.com"),
    ("BROADSHEET_SUBSCRIBE_RATE_LIMIT", "lots"),
    ("BROADSHEET_LOG_LEVEL", "LOUD"),
    ("BROADSHEET_MAX_BODY_BYTES", "10"),
    ("BROADSHEET_SECRET_KEY", "short"),
    ("BROADSHEET_ADMIN_API_KEY", "tiny"),
    ("BROADSHEET_DKIM_SELECTOR", "s1"),
    ("BROADSHEET_CONFIRM_TOKEN_MAX_AGE_SECONDS", "-5"),
]


def assert_one_line_naming(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert name in lines[0]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_serve_refuses_a_bad_setting_with_one_line_naming_it(
    tmp_path: Path, name: str, value: str
) -> None:
    assert_one_line_naming(start("serve", tmp_path, **{name: value}), name)


def test_serve_refuses_to_start_without_a_secret_key_outside_dev(tmp_path: Path) -> None:
    result = start("serve", tmp_path, BROADSHEET_SECRET_KEY=None)
    assert_one_line_naming(result, "BROADSHEET_SECRET_KEY")


@pytest.mark.parametrize(
    ("name", "value"), [("BROADSHEET_SMTP_URL", "http://x"), ("BROADSHEET_SEND_RATE", "-1")]
)
def test_worker_refuses_a_bad_setting_with_one_line_naming_it(
    tmp_path: Path, name: str, value: str
) -> None:
    assert_one_line_naming(start("worker", tmp_path, **{name: value}), name)


def test_the_start_up_error_never_repeats_a_secret(tmp_path: Path) -> None:
    result = start(
        "serve",
        tmp_path,
        BROADSHEET_SMTP_URL="http://mailer:hunter2-smtp-password@mail.example.com",
        BROADSHEET_ADMIN_API_KEY="short-admin-key",
    )
    assert result.returncode == 2
    assert "hunter2-smtp-password" not in result.stderr + result.stdout
    assert "short-admin-key" not in result.stderr + result.stdout


def _serve_until_healthy(tmp_path: Path, **env: str) -> str:
    """Start `serve`, wait until it answers, stop it; everything it wrote to stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    clean["BROADSHEET_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**clean, **GOOD, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", 60, processes=[process])
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    return stderr


def _base_url_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "BROADSHEET_BASE_URL" in line]


def test_serve_warns_in_one_line_when_the_base_url_is_not_https(tmp_path: Path) -> None:
    stderr = _serve_until_healthy(tmp_path, BROADSHEET_BASE_URL="http://news.example.com")
    (line,) = _base_url_lines(stderr)
    assert "WARNING" in line
    assert "BROADSHEET_BASE_URL is http://news.example.com, not https" in line
    assert "one-click unsubscribe (RFC 8058) needs an https URL" in line


def test_serve_does_not_warn_about_an_https_base_url(tmp_path: Path) -> None:
    stderr = _serve_until_healthy(tmp_path, BROADSHEET_BASE_URL="https://news.example.com")
    assert _base_url_lines(stderr) == []


def test_worker_warns_in_one_line_when_the_base_url_is_not_https(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    clean["BROADSHEET_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    env = {**clean, **GOOD, "BROADSHEET_BASE_URL": "http://news.example.com"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--no-scheduler"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        assert process.stderr is not None
        # The worker logs its SQLite advice right after the start-up warnings.
        for line in process.stderr:
            seen.append(line)
            if "SQLite: run a single worker process" in line:
                break
    finally:
        process.terminate()
        process.communicate(timeout=30)
    (line,) = _base_url_lines("".join(seen))
    assert "WARNING" in line
    assert "RFC 8058" in line


@pytest.mark.parametrize(
    ("base_url", "dev", "warned"),
    [
        ("http://news.example.com", False, True),
        ("http://127.0.0.1:8000", False, True),
        ("https://news.example.com", False, False),
        ("http://127.0.0.1:8000", True, False),  # broadsheet dev: http by design
    ],
)
def test_only_an_http_base_url_outside_dev_is_warned_about(
    base_url: str, dev: bool, warned: bool
) -> None:
    settings = load_settings(
        base_url=base_url, dev=dev, secret_key="startup-test-secret-0123456789", _env_file=None
    )
    warnings = startup_warnings(settings)
    assert len(warnings) == (1 if warned else 0)
    assert all("BROADSHEET_BASE_URL" in line for line in warnings)
