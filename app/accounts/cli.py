"""`broadsheet users ...`: create, list, set a password, disable (SPEC section 11)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

users_cli = typer.Typer(
    help="Dashboard users (log in at /admin).", no_args_is_help=True, rich_markup_mode=None
)
T = TypeVar("T")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction against the configured database."""
    from app.kit.cli import local_settings_or_exit
    from app.kit.db import create_engine, create_sessionmaker, unit_of_work
    from app.kit.errors import BroadsheetError

    settings = local_settings_or_exit()

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except BroadsheetError as exc:
        typer.echo(f"error: {_message(exc)}", err=True)
        raise typer.Exit(1) from None


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message if message is not None else exc)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first: str = typer.prompt("Password", hide_input=True)
    second: str = typer.prompt("Repeat it", hide_input=True)
    if first != second:
        typer.echo("error: the two passwords differ", err=True)
        raise typer.Exit(2)
    return first


@users_cli.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The address the person logs in with.")],
    role: Annotated[str, typer.Option(help="admin or editor")] = "editor",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user who can log in to the dashboard."""
    from app.accounts import service
    from app.models import Role

    if role not in ("admin", "editor"):
        typer.echo("error: --role must be admin or editor", err=True)
        raise typer.Exit(2)
    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> str:
        user = await service.create_user(session, email=email, role=Role(role), password=password)
        await service.audit(session, "command line", "user.create", user.email, f"role {role}")
        return user.email

    typer.echo(f"created {role} {_run(work)}")


@users_cli.command("list")
def users_list() -> None:
    """List the users: email, role, last login, disabled."""
    from app.accounts import service

    async def work(session: AsyncSession) -> list[tuple[str, str, str, str]]:
        return [
            (
                user.email,
                user.role,
                user.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if user.last_login_at else "-",
                "disabled" if user.disabled_at else "",
            )
            for user in await service.list_users(session)
        ]

    rows = _run(work)
    if not rows:
        typer.echo("no users yet: broadsheet users create EMAIL --role admin")
        return
    width = max(len(row[0]) for row in rows)
    for email, role, last, state in rows:
        typer.echo(f"{email:<{width}}  {role:<6}  {last:<20}  {state}".rstrip())


@users_cli.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Argument(help="The user's address.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a user's password; their open sessions end."""
    from app.accounts import service

    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> None:
        user = await service.get_user(session, email)
        await service.set_password(session, user, password)
        await service.audit(session, "command line", "user.password", user.email)

    _run(work)
    typer.echo("password set; the user's sessions have ended")


@users_cli.command("disable")
def users_disable(email: Annotated[str, typer.Argument(help="The user's address.")]) -> None:
    """Disable a user: they can no longer log in, and their sessions end."""
    from app.accounts import service

    async def work(session: AsyncSession) -> None:
        user = await service.get_user(session, email)
        await service.set_disabled(session, user, True)
        await service.audit(session, "command line", "user.disable", user.email)

    _run(work)
    typer.echo(f"disabled {email.strip()}")
