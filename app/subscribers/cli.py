from __future__ import annotations

import typer

subscribers_cli = typer.Typer(help="Subscribers.", no_args_is_help=True)
