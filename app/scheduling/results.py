"""What a scheduler pass reports, and the few pieces its two halves share.

The one-off half (`oneoff`) and the cron tick half (`ticks`) both answer
`TickResult`s, word them the same way, and start a send through `start_send()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

StartSend = Callable[..., Awaitable[int]]


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one pass did about one tick or one-off schedule."""

    newsletter_id: int
    newsletter: str  # slug
    kind: str  # "cron" or "one-off"
    tick_at: datetime
    outcome: str  # sent, skipped, missed
    issue_id: int | None
    detail: str

    def line(self) -> str:
        when = self.tick_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.newsletter} {self.kind} {when}: {self.outcome} - {self.detail}"


def start_send() -> StartSend:
    """delivery's `start_send`, imported only when a send is due."""
    # Imported when a send is due: the delivery engine and rendering are most of the
    # start-up time of a `run-due` that, most minutes, has nothing to do.
    from app.delivery.service import start_send

    return start_send


def recipients(count: int) -> str:
    return "1 recipient" if count == 1 else f"{count} recipients"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h"
