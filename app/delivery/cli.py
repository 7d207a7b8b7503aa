"""`broadsheet send ISSUE_ID [--watch]`: start a send straight in the database and watch it."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

FINAL = ("sent", "cancelled")
# What `watch` follows: a send in progress, or one that ended (it prints the outcome).
WATCHABLE = ("sending", "paused", *FINAL)


class _RateEta(ProgressColumn):
    """Messages per second over the last few seconds, and the time left at that rate."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate", 0.0)
        remaining = (task.total or 0) - task.completed
        eta = f"{remaining / rate:,.0f}s left" if rate > 0 and remaining > 0 else "-"
        return Text(f"{rate:,.0f} msg/s  ETA {eta}")


IssueIdArg = Annotated[int, typer.Argument(metavar="ISSUE_ID", help="The issue's id.")]


def send(
    issue_id: IssueIdArg,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Show live progress (sent, failed, rate, ETA) until done."),
    ] = False,
) -> None:
    """Trigger a send and show live progress."""
    from app.kit.cli import configure_logging, local_settings_or_exit

    settings = local_settings_or_exit()
    configure_logging(settings)
    console = Console()
    code = asyncio.run(_run(settings, issue_id, watch, console))
    raise typer.Exit(code)


def watch(issue_id: IssueIdArg) -> None:
    """Follow a send that is already running (sent, failed, rate, ETA) until it ends."""
    from app.kit.cli import configure_logging, local_settings_or_exit

    settings = local_settings_or_exit()
    configure_logging(settings)
    console = Console()
    code = asyncio.run(_follow(settings, issue_id, console))
    raise typer.Exit(code)


async def _follow(settings: Any, issue_id: int, console: Console) -> int:
    from app.issues import service as issues_service
    from app.kit.db import create_engine, create_sessionmaker
    from app.kit.errors import NotFound

    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    try:
        try:
            async with sessionmaker() as session:
                issue = await issues_service.get(session, issue_id)
        except NotFound:
            console.print(f"[red]error:[/red] no issue {issue_id}")
            return 1
        if issue.status not in WATCHABLE:
            console.print(
                f"[red]error:[/red] issue {issue_id} is {issue.status}, not being sent; "
                f"start it with: broadsheet send {issue_id} --watch"
            )
            return 1
        return await _watch(sessionmaker, issue_id, console)
    finally:
        await engine.dispose()


async def _run(settings: Any, issue_id: int, watch: bool, console: Console) -> int:
    from app.delivery import service
    from app.issues import service as issues_service
    from app.kit.db import create_engine, create_sessionmaker, unit_of_work
    from app.kit.errors import Conflict, NotFound

    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    try:
        try:
            async with unit_of_work(sessionmaker) as session:
                issue = await issues_service.get(session, issue_id)
                recipients = await service.start_send(session, issue, settings=settings)
            console.print(f"Issue {issue_id}: sending to {recipients:,} readers.")
        except NotFound:
            console.print(f"[red]error:[/red] no issue {issue_id}")
            return 1
        except Conflict as exc:
            if not watch or not any(s in str(exc.detail) for s in ("sending", "paused")):
                console.print(f"[red]error:[/red] {exc.detail}")
                return 1
            console.print(f"Issue {issue_id} is already on its way; watching it.")
        if not watch:
            return 0
        return await _watch(sessionmaker, issue_id, console)
    finally:
        await engine.dispose()


async def _watch(sessionmaker: Any, issue_id: int, console: Console) -> int:
    from app.delivery import service
    from app.issues import service as issues_service

    history: list[tuple[float, int]] = []
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]:,}  failed {task.fields[failed]:,}"),
        _RateEta(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sending", total=None, sent=0, failed=0, rate=0.0)
        while True:
            async with sessionmaker() as session:
                issue = await issues_service.get(session, issue_id)
                stats = await service.stats(session, issue)
            done = sum(stats[k] for k in ("sent", "failed", "bounced", "skipped", "cancelled"))
            now = time.monotonic()
            history.append((now, stats["sent"]))
            history = [(t, n) for t, n in history if now - t <= 5.0]
            rate = (
                (history[-1][1] - history[0][1]) / (history[-1][0] - history[0][0])
                if len(history) > 1 and history[-1][0] > history[0][0]
                else 0.0
            )
            description = stats["status"]
            if stats["status"] == "paused" and stats["pause_reason"]:
                description = f"paused ({stats['pause_reason'][:60]})"
            progress.update(
                task,
                total=max(stats["recipients"], 1),
                completed=done,
                description=description,
                sent=stats["sent"],
                failed=stats["failed"] + stats["bounced"],
                rate=rate,
            )
            if stats["status"] in FINAL:
                break
            await asyncio.sleep(0.5)
    console.print(
        f"Issue {issue_id} {stats['status']}: {stats['sent']:,} sent, {stats['failed']:,} "
        f"failed, {stats['bounced']:,} bounced, {stats['skipped']:,} skipped."
    )
    return 0
