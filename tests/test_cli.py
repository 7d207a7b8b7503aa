"""The `broadsheet` command as a user runs it: its help, and a development checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from app.cli import cli
from tests.conftest import ROOT


def _every_command() -> list[list[str]]:
    """The argument lists of every command and group, from the root down."""
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        # Typer's groups are not click.Group instances (Typer carries its own Click).
        for name in getattr(command, "commands", {}):
            walk(command.commands[name], [*path, name])

    walk(typer.main.get_command(cli), [])
    return found


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m app.cli ARGS` in `cwd`, with no BROADSHEET_ setting from outside."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), "COLUMNS": "100", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_help_of_every_command_shows_no_bool_tag_on_flags(tmp_path: Path) -> None:
    commands = _every_command()
    assert ["send"] in commands
    assert ["watch"] in commands
    assert ["keys", "list"] in commands
    for args in commands:
        result = _run([*args, "--help"], tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "--help" in result.stdout
        assert "<bool>" not in result.stdout, (args, result.stdout)
    send = _run(["send", "--help"], tmp_path).stdout
    assert "--watch  Show live progress" in send


def _dev_checkout(tmp_path: Path) -> Path:
    """A directory with the database `broadsheet dev` makes: ./var/broadsheet.db, migrated."""
    (tmp_path / "var").mkdir()
    upgraded = _run(["db", "upgrade"], tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "var" / "broadsheet.db").is_file()
    return tmp_path


def test_send_works_in_a_dev_checkout_without_a_secret_key(tmp_path: Path) -> None:
    checkout = _dev_checkout(tmp_path)
    result = _run(["send", "424242", "--watch"], checkout)
    # It reached the database: the answer is about the issue, not about a setting.
    assert "SECRET_KEY" not in result.stdout + result.stderr
    assert "no issue 424242" in result.stdout
    assert result.returncode == 1
    watch = _run(["watch", "424242"], checkout)
    assert "no issue 424242" in watch.stdout
    assert watch.returncode == 1


def test_keys_list_and_revoke_work_in_a_dev_checkout(tmp_path: Path) -> None:
    checkout = _dev_checkout(tmp_path)
    created = _run(["keys", "create", "--name", "laptop", "--role", "admin"], checkout)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    listed = _run(["keys", "list"], checkout)
    assert listed.returncode == 0, listed.stderr
    assert "laptop" in listed.stdout
    assert key[:10] in listed.stdout
    assert key not in listed.stdout
    revoked = _run(["keys", "revoke", key[:10]], checkout)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked key 1 (laptop" in revoked.stdout


def test_outside_a_dev_checkout_a_missing_secret_key_is_named_with_what_to_do(
    tmp_path: Path,
) -> None:
    result = _run(["send", "1"], tmp_path)  # no ./var/broadsheet.db here
    assert result.returncode == 2
    assert "BROADSHEET_SECRET_KEY" in result.stderr
    assert "BROADSHEET_DEV=1" in result.stderr
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("database", ["postgresql+asyncpg://u:p@127.0.0.1:1/x", "other.db"])
def test_a_database_other_than_the_dev_one_still_needs_a_secret_key(
    tmp_path: Path, database: str
) -> None:
    checkout = _dev_checkout(tmp_path)
    url = database if "://" in database else f"sqlite+aiosqlite:///{checkout / database}"
    result = _run(["keys", "list"], checkout, BROADSHEET_DATABASE_URL=url)
    assert result.returncode == 2
    assert "BROADSHEET_SECRET_KEY" in result.stderr
