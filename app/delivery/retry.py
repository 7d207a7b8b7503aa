"""The one retry policy of every send (issues and transactional mail alike).

- a classified SMTP outcome and the attempts used so far give the next step (`settle`);
- transient failures back off exponentially: `RETRY_BACKOFF_SECONDS * 2**attempts`;
- an SMTP server that cannot be reached (or answers 421) only delays: no attempt is
  used, and a `Backoff` shared by every connection of a worker slows them all down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

from app.delivery.classify import Outcome, Verdict
from app.delivery.outcomes import Kind
from app.settings import Settings

logger = logging.getLogger("broadsheet.delivery")


class Backoff:
    """Capped exponential delay while the SMTP server cannot be reached.

    Shared by every connection of a pool, so the whole worker slows down together and
    speeds up again as soon as one connection gets through.
    """

    def __init__(self, *, first: float = 0.5, cap: float = 15.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = 0.0
        self.down_until = 0.0

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self) -> float:
        """Note one failed connection attempt; the delay before the next one.

        Several connections failing at the same moment count once: the delay grows only
        when a new attempt fails after the previous wait is over.
        """
        now = time.monotonic()
        if now < self.down_until:
            return self.down_until - now
        self.delay = self.first if self.delay == 0 else min(self.cap, self.delay * 2)
        self.down_until = now + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0
        self.down_until = 0.0

    async def wait(self) -> None:
        remaining = self.down_until - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)


class Step(NamedTuple):
    """The next step of a delivery: its kind, and seconds until it is due again."""

    kind: Kind
    retry_in: float = 0.0


_SENT = Step(Kind.sent)
_BOUNCED = Step(Kind.bounced)
_FAILED = Step(Kind.failed)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_attempts, settings.retry_backoff_seconds)

    @property
    def policy_delay(self) -> float:
        """How long a delivery refused for the sender's sake waits before it is offered again."""
        return max(1.0, self.backoff_seconds)

    def retry_in(self, attempts: int) -> float:
        """Seconds before a transient failure is tried again, `attempts` used before it."""
        return float(self.backoff_seconds * 2**attempts)

    def settle(self, outcome: Outcome, attempts: int, backoff: Backoff) -> Step:
        """The next step after `outcome`, for a delivery that had used `attempts`.

        Also keeps `backoff` up to date: a success clears it, an unreachable server
        (or a 421) grows it and the delivery waits that long without using an attempt.
        """
        verdict = outcome.verdict
        if verdict is Verdict.sent:
            backoff.succeeded()
            return _SENT
        if verdict is Verdict.bounce:
            return _BOUNCED
        if verdict is Verdict.policy:
            return Step(Kind.policy, self.policy_delay)
        if verdict is Verdict.unreachable:
            delay = backoff.failed()
            if outcome.before_send:
                logger.warning("SMTP unreachable, backing off %.1fs: %s", delay, outcome.reply)
            return Step(Kind.release, delay)
        if attempts + 1 >= self.max_attempts:
            return _FAILED
        return Step(Kind.retry, self.retry_in(attempts))
