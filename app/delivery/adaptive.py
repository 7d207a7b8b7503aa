"""How many SMTP connections a worker keeps open (SPEC section 13): a hill climb.

Over a real network a message's time is mostly round trips, so more connections carry
more mail, up to what the relay (or this process's CPU) can take. The worker starts at
SMTP_POOL_SIZE. While mail waits for a free connection it doubles the count (up to
SMTP_MAX_CONNECTIONS) and keeps the new connections when messages/s rose by at least a
third of what they could add (a round-trip-bound send doubles); otherwise it goes back
to the count before, holds there for a while, and from then on tries smaller steps (a
quarter more). Each measurement skips the window right after a change, when new
connections are still saying EHLO. A sign that the relay has enough (a 421 reply, a
refused connection, a reply that says "too many") shrinks the pool by a quarter at once
and holds growth back. Every change is logged once, with its reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from app.delivery.classify import Outcome, Verdict

logger = logging.getLogger("broadsheet.delivery")

WINDOW_SECONDS = 0.5
SETTLE_SECONDS = 0.3  # the window after a change, not measured
MIN_ANSWERS = 20  # a window with fewer answers is extended (up to MAX_WINDOW_SECONDS)
MAX_WINDOW_SECONDS = 5.0
# A step must bring at least this share of the gain it could (linear in connections).
SHARE = 0.35
HOLD_SECONDS = 15.0  # after a step that did not pay, or a refusal: no growth meanwhile
_TOO_MANY = re.compile(r"too many|connection limit|concurrent", re.IGNORECASE)


def is_busy_signal(outcome: Outcome) -> bool:
    """The relay says it has enough connections (or took none at all)."""
    if outcome.verdict is Verdict.unreachable:
        return True  # a 421, or no server would take a connection
    code = outcome.code
    return code is not None and 400 <= code < 500 and _TOO_MANY.search(outcome.reply) is not None


@dataclass
class _Probe:
    size: int  # the count before the step
    rate: float  # messages/s measured at that count


class ConnectionTuner:
    """Counts answers and busy signals; `tick` says when the pool should change size."""

    def __init__(self, start: int, ceiling: int, *, now: float) -> None:
        self.size = max(1, start)
        self.ceiling = max(self.size, ceiling)
        self.answers = 0
        self.busy: str | None = None
        self.window_start = now
        self.settling = True  # the first window holds connection set-up: not measured
        self.rate = 0.0  # messages/s at the current size (0 until measured)
        self.probe: _Probe | None = None
        self.hold_until = now
        self.doubling = True  # until a step fails to pay; then a quarter at a time

    def observe(self, outcome: Outcome) -> None:
        """A send's outcome: an answer from the relay, or a sign it wants fewer of us."""
        if is_busy_signal(outcome):
            self.busy = outcome.reply[:200] or "connection refused"
        elif not outcome.before_send:
            self.answers += 1

    def tick(self, now: float, *, waiting: bool) -> int | None:
        """The new size when it should change now; `waiting`: mail waits for a sender."""
        if self.busy is not None and self.size > 1:
            return self._shrink(now)
        elapsed = now - self.window_start
        if elapsed < (SETTLE_SECONDS if self.settling else WINDOW_SECONDS) or (
            self.answers < MIN_ANSWERS and elapsed < MAX_WINDOW_SECONDS
        ):
            return None
        rate = self.answers / elapsed
        self._new_window(now)
        if self.settling:
            self.settling = False
            return None
        probe, self.probe = self.probe, None
        if probe is not None and rate < probe.rate * (1 + SHARE * (self.size / probe.size - 1)):
            self.hold_until = now + HOLD_SECONDS
            self.doubling = False
            return self._resize(
                probe.size,
                now,
                f"{rate:.0f} msg/s with {self.size} is no better than "
                f"{probe.rate:.0f} with {probe.size}",
            )
        self.rate = rate
        if waiting and self.size < self.ceiling and now >= self.hold_until:
            self.probe = _Probe(self.size, rate)
            step = self.size if self.doubling else max(2, self.size // 4)
            return self._resize(
                min(self.ceiling, self.size + step), now, f"mail waits at {rate:.0f} msg/s"
            )
        return None

    def _shrink(self, now: float) -> int:
        reason = f"the relay pushed back: {self.busy}"
        self.probe = None
        self.doubling = False
        self.hold_until = now + HOLD_SECONDS
        return self._resize(max(1, self.size - max(1, self.size // 4)), now, reason)

    def _resize(self, size: int, now: float, reason: str) -> int:
        logger.info("SMTP connections %d -> %d (%s)", self.size, size, reason)
        self.size = size
        self._new_window(now)
        self.settling = True
        return size

    def _new_window(self, now: float) -> None:
        self.window_start = now
        self.answers = 0
        self.busy = None
