"""`broadsheet users ...` on the real test database (SPEC section 11)."""

from __future__ import annotations

import asyncio

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.accounts.cli import users_cli as users_cli_app
from app.models import AuditEvent, User
from tests.admin.support import ORIGIN
from tests.conftest import SECRET

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


async def users_cli(database_url: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """The command in a thread of this process (its own event loop, as from a shell)."""
    env = {
        "BROADSHEET_DATABASE_URL": database_url,
        "BROADSHEET_SECRET_KEY": SECRET,
        "COLUMNS": "160",
    }
    result = await asyncio.to_thread(CliRunner().invoke, users_cli_app, list(args), stdin, env)
    return result.exit_code, result.stdout, result.stderr


async def can_log_in(client: AsyncClient, email: str, password: str) -> bool:
    response = await client.post(
        "/admin/login", data={"email": email, "password": password}, headers={"Origin": ORIGIN}
    )
    return response.status_code == 303


async def test_create_list_set_password_and_disable(
    database_url: str, client: AsyncClient, session: AsyncSession
) -> None:
    code, out, err = await users_cli(
        database_url,
        "create",
        "chief@example.com",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    assert out.strip() == "created admin chief@example.com"
    assert PASSWORD not in out + err
    assert await can_log_in(client, "chief@example.com", PASSWORD)

    code, out, err = await users_cli(database_url, "list")
    assert code == 0, err
    (line,) = out.splitlines()
    assert line.split()[:2] == ["chief@example.com", "admin"]
    assert "UTC" in line  # the login just now
    assert "disabled" not in line

    code, out, err = await users_cli(
        database_url, "set-password", "chief@example.com", "--password-stdin", stdin=NEW_PASSWORD
    )
    assert code == 0, err
    assert not await can_log_in(client, "chief@example.com", PASSWORD)
    assert await can_log_in(client, "chief@example.com", NEW_PASSWORD)

    code, out, err = await users_cli(database_url, "disable", "chief@example.com")
    assert code == 0, err
    assert out.strip() == "disabled chief@example.com"
    assert not await can_log_in(client, "chief@example.com", NEW_PASSWORD)
    code, out, _ = await users_cli(database_url, "list")
    assert out.rstrip().endswith("disabled")

    actions = (await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert actions == ["user.create", "user.password", "user.disable"]
    actors = set((await session.scalars(select(AuditEvent.actor))).all())
    assert actors == {"command line"}


async def test_an_empty_list_says_how_to_start(database_url: str) -> None:
    code, out, err = await users_cli(database_url, "list")
    assert code == 0, err
    assert "broadsheet users create" in out


async def test_bad_input_is_refused_with_a_message(
    database_url: str, session: AsyncSession
) -> None:
    cases = [
        (["create", "a@example.com", "--role", "owner", "--password-stdin"], PASSWORD, 2, "role"),
        (["create", "not an address", "--password-stdin"], PASSWORD, 1, "error:"),
        (["create", "a@example.com", "--password-stdin"], "short", 1, "at least 10"),
        (["set-password", "nobody@example.com", "--password-stdin"], PASSWORD, 1, "no user"),
        (["disable", "nobody@example.com"], "", 1, "no user"),
    ]
    for args, stdin, expected, message in cases:
        code, out, err = await users_cli(database_url, *args, stdin=stdin)
        assert code == expected, (args, out, err)
        assert message in err, (args, err)
    assert (await session.scalars(select(User))).all() == []
    # A second user with the same address is refused.
    args = ["create", "a@example.com", "--password-stdin"]
    assert (await users_cli(database_url, *args, stdin=PASSWORD))[0] == 0
    code, _, err = await users_cli(database_url, *args, stdin=PASSWORD)
    assert code == 1
    assert "exists already" in err


async def test_without_the_flag_the_password_is_asked_twice(
    database_url: str, client: AsyncClient
) -> None:
    differ = f"{PASSWORD}\nsomething else entirely\n"
    code, _, err = await users_cli(database_url, "create", "ed@example.com", stdin=differ)
    assert code == 2
    assert "the two passwords differ" in err
    same = f"{PASSWORD}\n{PASSWORD}\n"
    code, out, err = await users_cli(database_url, "create", "ed@example.com", stdin=same)
    assert code == 0, err
    assert "created editor ed@example.com" in out
    assert PASSWORD not in out
    assert await can_log_in(client, "ed@example.com", PASSWORD)
