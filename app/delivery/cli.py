from __future__ import annotations

import typer


def send(issue_id: int, watch: bool = typer.Option(False, "--watch")) -> None:
    """Trigger a send and show live progress."""
    raise typer.Exit(1)
