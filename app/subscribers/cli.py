"""`broadsheet subscribers ...`: the same importer as the HTTP endpoint, with a progress bar."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

if TYPE_CHECKING:
    from app.settings import Settings

subscribers_cli = typer.Typer(help="Subscribers.", no_args_is_help=True, rich_markup_mode=None)

CHUNK = 256 * 1024


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    # Small blocking reads of a local file: cheap next to the database work per batch.
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


async def _import(
    settings: Settings, slug: str, file: Path, console: Console, advance: Callable[[int], None]
) -> dict[str, Any] | None:
    """The import's report, or None after printing why there is none."""
    from app.kit.db import create_engine, create_sessionmaker
    from app.kit.errors import Invalid
    from app.newsletters import service as newsletters
    from app.subscribers.importer import import_csv

    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            newsletter = await newsletters.find(session, slug)
        if newsletter is None:
            console.print(f"[red]error:[/red] no newsletter with the slug {slug!r}")
            return None
        report = await import_csv(
            sessionmaker,
            _file_chunks(file),
            newsletter_id=newsletter.id,
            consent_text=f"imported by {getpass.getuser()} with broadsheet subscribers import",
            allow_utf8_local=settings.smtputf8,
            progress=advance,
        )
        return report.as_dict()
    except Invalid as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        return None
    finally:
        await engine.dispose()


def _print_report(result: dict[str, Any]) -> None:
    typer.echo(
        f"created {result['created']}, updated {result['updated']}, "
        f"skipped {result['skipped']}, invalid {result['invalid_count']} "
        f"(of {result['rows']} rows)"
    )
    for item in result["invalid"][:50]:
        typer.echo(f"  line {item['line']}: {item['reason']}")
    if result["invalid_count"] > 50:
        typer.echo(f"  ... and {result['invalid_count'] - 50} more invalid lines")


@subscribers_cli.command("import")
def import_command(
    slug: Annotated[str, typer.Argument(help="The newsletter's slug.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header row: email, optional name, other columns as attributes.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import subscribers from a CSV file (active at once; suppressed addresses skipped)."""
    from app.kit.cli import settings_or_exit

    settings = settings_or_exit(dev=True)
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]Importing[/bold] {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(file.name, total=file.stat().st_size)
        result = asyncio.run(
            _import(settings, slug, file, console, lambda n: progress.advance(task, n))
        )
    if result is None:
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_report(result)
