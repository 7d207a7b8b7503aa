"""`broadsheet send ISSUE_ID --watch`: starts the send in the database and follows it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings
from tests.conftest import ROOT
from tests.delivery.conftest import running_worker
from tests.delivery.faulty_smtp import FaultyServer
from tests.factories import seed, worker_env


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        *args,
        cwd=ROOT,
        env={**env, "COLUMNS": "120"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_send_watch_starts_the_send_and_follows_it_to_the_end(
    database_url: str,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 30)
    env = worker_env(database_url, faulty.url)
    async with running_worker(faulty_settings(), engine):
        code, out = await run_cli(env, "send", str(issue_id), "--watch")
    assert code == 0, out
    assert f"Issue {issue_id}: sending to 30 readers." in out
    assert "30 sent, 0 failed, 0 bounced, 0 skipped" in out
    assert len(faulty.sink.messages) == 30
    again, out = await run_cli(env, "send", str(issue_id))
    assert again == 1
    assert "cannot send an issue that is sent" in out


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("send", id="send of an unknown issue"),
        pytest.param("watch", id="watch of an unknown issue"),
    ],
)
async def test_an_unknown_issue_fails_with_a_clear_message(
    command: str, database_url: str, faulty: FaultyServer
) -> None:
    code, out = await run_cli(worker_env(database_url, faulty.url), command, "424242")
    assert code == 1
    assert "no issue 424242" in out


async def test_watch_follows_a_send_that_is_already_running_to_the_end(
    database_url: str,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 20)
    env = worker_env(database_url, faulty.url)
    started, out = await run_cli(env, "send", str(issue_id))  # no --watch: returns at once
    assert started == 0, out
    async with running_worker(faulty_settings(), engine):
        code, out = await run_cli(env, "watch", str(issue_id))
    assert code == 0, out
    assert "msg/s" in out  # the live progress line
    assert f"Issue {issue_id} sent: 20 sent, 0 failed, 0 bounced, 0 skipped." in out
    assert len(faulty.sink.messages) == 20


async def test_watch_of_an_issue_that_is_not_being_sent_says_how_to_start_it(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], faulty: FaultyServer
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 1)
    code, out = await run_cli(worker_env(database_url, faulty.url), "watch", str(issue_id))
    assert code == 1
    assert f"issue {issue_id} is draft, not being sent" in out
    assert f"broadsheet send {issue_id} --watch" in out
