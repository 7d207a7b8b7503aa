"""Running the real `broadsheet` command in child processes, for the race tests."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]


def command_env(database_url: str, smtp_port: int, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BROADSHEET_") or key.startswith("BROADSHEET_TEST")
    }
    env.update(
        {
            "BROADSHEET_DATABASE_URL": database_url,
            "BROADSHEET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "BROADSHEET_SECRET_KEY": SECRET,
            "BROADSHEET_BASE_URL": "http://testserver",
            "BROADSHEET_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def start(args: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 60) -> Finished:
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


async def run_due_at_once(count: int, env: dict[str, str], cwd: Path) -> list[Finished]:
    """`count` run-due processes started together; all of them waited for."""
    processes = [await start(["run-due"], env, cwd) for _ in range(count)]
    return list(await asyncio.gather(*(finish(p) for p in processes)))
