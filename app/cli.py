"""The `broadsheet` command."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from app.kit.cli import (
    configure_logging,
    run_until_signalled,
    settings_or_exit,
    warn_about_settings,
)

# Plain Click help (rich_markup_mode=None) on every command group: Typer 0.29's rich
# help formatter prints each option's type, and for flags, which take no value, that
# is a misleading `<bool>` (`--watch <bool>`); its plain formatter leaves flags bare.
cli = typer.Typer(
    help="Broadsheet: self-hosted email newsletter delivery.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)
cli.add_typer(db_cli, name="db")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the database schema to the latest version."""
    from app.kit.migrate import upgrade

    settings = settings_or_exit(dev=True)
    upgrade(settings.database_url)
    typer.echo("database is up to date")


KEEP_ALIVE_SECONDS = 90


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="API worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = settings_or_exit()
    configure_logging(settings)
    warn_about_settings(settings)
    uvicorn.run(
        "app.asgi:app",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        access_log=False,
        log_level=settings.log_level.lower(),
        # Longer than the idle timeout of the clients and proxies in front (httpx keeps
        # an idle connection 5 s, load balancers commonly 60 s): the client should be the
        # one to close an idle kept-alive connection. With uvicorn's default, also 5 s, a
        # request sent just as the server gives up on the connection meets a reset, which
        # the load test saw under a busy client.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


@cli.command()
def worker(
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Deliver only; leave cron ticks to others.")
    ] = False,
) -> None:
    """Deliver mail (issues and transactional) and run the scheduler loop until SIGTERM."""
    from app.worker import run_worker

    settings = settings_or_exit()
    configure_logging(settings)
    warn_about_settings(settings)
    if settings.is_sqlite:
        logging.getLogger("broadsheet").info("SQLite: run a single worker process")

    async def main(stop: asyncio.Event) -> None:
        await run_worker(settings, stop=stop, with_scheduler=not no_scheduler)

    run_until_signalled(main)


@cli.command("run-due")
def run_due() -> None:
    """One scheduler pass, for a system crontab; safe to run concurrently."""
    from app.scheduling.runner import run_due_once

    settings = settings_or_exit()
    configure_logging(settings)
    for line in asyncio.run(run_due_once(settings)):
        typer.echo(line)


@cli.command()
def dev(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    smtp_port: Annotated[int, typer.Option(help="Port of the local mail catcher.")] = 1025,
) -> None:
    """Everything in one process on SQLite: API, worker, scheduler and a mail catcher."""
    from app.dev import run_dev

    run_dev(host=host, port=port, smtp_port=smtp_port)


def _register_feature_commands() -> None:
    from app.accounts.cli import users_cli
    from app.delivery.cli import send, watch
    from app.keys.cli import keys_cli
    from app.subscribers.cli import subscribers_cli

    cli.add_typer(keys_cli, name="keys")
    cli.add_typer(subscribers_cli, name="subscribers")
    cli.add_typer(users_cli, name="users")
    cli.command("send")(send)
    cli.command("watch")(watch)


_register_feature_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
