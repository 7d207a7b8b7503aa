"""`broadsheet dev` prints a development admin's login beside the admin key, and it works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.smtp import free_port

pytestmark = pytest.mark.slow

LOGIN = re.compile(r"email:\s+(\S+)\n\s+password:\s+(\S+)")


def start_dev(directory: Path) -> tuple[subprocess.Popen[bytes], str, tuple[str, str]]:
    """`broadsheet dev` in `directory`: the process, its URL and the login it printed."""
    port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADSHEET_")}
    env.update(PYTHONPATH=str(ROOT), BROADSHEET_LOG_LEVEL="WARNING")
    out = directory / f"dev-{port}.out"
    command = [sys.executable, "-m", "app.cli", "dev", "--port", str(port)]
    command += ["--smtp-port", str(smtp_port)]
    with out.open("wb") as sink:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=sink)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        text = out.read_text()
        found = LOGIN.search(text)
        if found and "Press Ctrl+C" in text:
            assert f"http://127.0.0.1:{port}/admin/login" in text
            assert "Admin API key: bs_" in text
            return process, f"http://127.0.0.1:{port}", (found.group(1), found.group(2))
        time.sleep(0.2)
    stop(process)
    raise AssertionError(f"broadsheet dev printed no login:\n{out.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def logs_in(base_url: str, email: str, password: str) -> bool:
    response = httpx.post(
        f"{base_url}/admin/login",
        data={"email": email, "password": password},
        headers={"Origin": base_url},
        timeout=10,
    )
    return response.status_code == 303 and response.headers["location"] == "/admin"


def test_dev_prints_a_working_admin_login_and_a_new_password_each_start(tmp_path: Path) -> None:
    process, base_url, (email, first) = start_dev(tmp_path)
    try:
        assert email == "admin@localhost.test"
        assert logs_in(base_url, email, first)
    finally:
        stop(process)
    process, base_url, (again, second) = start_dev(tmp_path)
    try:
        assert again == email
        assert second != first
        assert not logs_in(base_url, email, first)
        assert logs_in(base_url, email, second)
    finally:
        stop(process)
