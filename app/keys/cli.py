"""`broadsheet keys ...`: create, list and revoke API keys straight in the database."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

keys_cli = typer.Typer(help="API keys.", no_args_is_help=True, rich_markup_mode=None)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    role: Annotated[str, typer.Option(help="admin or editor")] = "editor",
) -> None:
    """Create an API key and print it once."""
    from app.keys.service import create_key
    from app.kit.cli import settings_or_exit
    from app.kit.db import create_engine, create_sessionmaker, unit_of_work
    from app.kit.text import check_single_line
    from app.models import Role

    if role not in ("admin", "editor"):
        typer.echo("error: --role must be admin or editor", err=True)
        raise typer.Exit(2)
    try:
        name = check_single_line(name)
    except ValueError as exc:
        typer.echo(f"error: --name {exc}", err=True)
        raise typer.Exit(2) from None
    settings = settings_or_exit(dev=True)

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                _, key = await create_key(session, name=name, role=Role(role))
        finally:
            await engine.dispose()
        return key

    typer.echo(asyncio.run(run()))


@keys_cli.command("list")
def keys_list() -> None:
    """List the API keys: id, name, role, prefix, created, last used, revoked.

    The keys themselves are never stored, so never shown; the prefix is their first
    characters, enough to recognise one.
    """
    from app.keys.service import list_keys
    from app.kit.cli import local_settings_or_exit
    from app.kit.db import create_engine, create_sessionmaker

    settings = local_settings_or_exit()

    async def run() -> Table:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = await list_keys(session)
        finally:
            await engine.dispose()
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("id", "name", "role", "prefix", "created", "last used", "revoked"):
            table.add_column(column, justify="right" if column == "id" else "left")
        for row in rows:
            table.add_row(
                str(row.id),
                row.name,
                row.role,
                row.prefix,
                _when(row.created_at),
                _when(row.last_used_at),
                _when(row.revoked_at),
            )
        return table

    table = asyncio.run(run())
    console = Console()
    if table.row_count == 0:
        console.print("No API keys yet. Create one with: broadsheet keys create --name NAME")
        return
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(
            metavar="ID_OR_PREFIX",
            help="The key's id, or the start of its prefix as `keys list` shows it.",
        ),
    ],
) -> None:
    """Revoke an API key at once: requests with it get 401 from now on."""
    from app.keys.service import find_key, revoke_key
    from app.kit.cli import local_settings_or_exit
    from app.kit.db import create_engine, create_sessionmaker, unit_of_work
    from app.kit.errors import Invalid, NotFound

    settings = local_settings_or_exit()

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                row = await find_key(session, key)
                revoked = await revoke_key(session, row)
                label = f"key {row.id} ({row.name}, {row.prefix}...)"
        finally:
            await engine.dispose()
        return f"revoked {label}" if revoked else f"{label} was already revoked"

    try:
        typer.echo(asyncio.run(run()))
    except NotFound as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    except Invalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
