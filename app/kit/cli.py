"""What every `broadsheet` command shares: settings or a one-line error, logging, the
event loop, signals, and the settings of a development checkout.

Below `app.cli` and the features' own command modules, so none of them imports another
entry point for these.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer

from app.settings import (
    DEFAULT_SQLITE_URL,
    Settings,
    SettingsError,
    load_settings,
    startup_warnings,
)

DEV_DATABASE = Path("var/broadsheet.db")  # the file of DEFAULT_SQLITE_URL


def dev_overrides(
    *, host: str = "127.0.0.1", port: int = 8000, smtp_port: int = 1025
) -> dict[str, object]:
    """The settings `broadsheet dev` runs with, on top of the environment and `.env`.

    The other commands read the same ones in a development checkout (see
    `local_settings_or_exit` below), so `broadsheet send 1 --watch` beside a running
    `broadsheet dev` renders its links for the same address.
    """
    return {
        "dev": True,
        "base_url": os.environ.get("BROADSHEET_BASE_URL", f"http://{host}:{port}"),
        "smtp_url": os.environ.get("BROADSHEET_SMTP_URL", f"smtp://127.0.0.1:{smtp_port}"),
        "retry_backoff_seconds": float(os.environ.get("BROADSHEET_RETRY_BACKOFF_SECONDS", "5")),
    }


def is_dev_checkout(settings: Settings) -> bool:
    """No secret key set, and the database is the SQLite file `broadsheet dev` made."""
    return (
        not settings.secret_key
        and settings.database_url == DEFAULT_SQLITE_URL
        and DEV_DATABASE.is_file()
    )


def settings_or_exit(**overrides: object) -> Settings:
    """The settings, or one line naming the bad setting and exit status 2."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def local_settings_or_exit() -> Settings:
    """Settings for a command that works on the database (send, watch, keys list/revoke).

    The normal rules, except in a development checkout: with no BROADSHEET_SECRET_KEY
    anywhere and the database the default SQLite file that `broadsheet dev` created,
    these commands read the settings `broadsheet dev` runs with, so they work beside it
    without any setup. BROADSHEET_DEV=1 does the same explicitly.
    """
    try:
        return load_settings()
    except SettingsError as exc:
        try:
            dev_settings = load_settings(**dev_overrides())
        except SettingsError:
            dev_settings = None
        if dev_settings is not None and is_dev_checkout(dev_settings):
            return dev_settings
        hint = ""
        if "SECRET_KEY" in str(exc):
            hint = (
                " (for a development checkout: run `broadsheet dev` once, or set BROADSHEET_DEV=1)"
            )
        typer.echo(f"error: {exc}{hint}", err=True)
        raise typer.Exit(2) from None


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def warn_about_settings(settings: Settings) -> None:
    """Log, once at start-up, the settings that work but should not be left as they are."""
    for line in startup_warnings(settings):
        logging.getLogger("broadsheet").warning(line)


def install_event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)`; SIGTERM and SIGINT set `stop` so it can drain and return."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    install_event_loop_policy()
    asyncio.run(runner())
