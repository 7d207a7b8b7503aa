"""The outcome writer: every result of the engine reaches the store in batches.

At least every 0.5 s and every 100 outcomes, one transaction per batch. Senders wait
while 100 outcomes are unwritten, so a hard crash repeats at most the messages in
flight (one per connection) + 100 (SPEC section 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from app.delivery.metrics import MESSAGES, SENT_RATE
from app.delivery.outcomes import FINAL_KINDS, Kind, Result
from app.delivery.store import PolicyRun, Store

logger = logging.getLogger("broadsheet.delivery")

FLUSH_EVERY_SECONDS = 0.5
FLUSH_EVERY_MESSAGES = 100
POLICY_REFUSALS_TO_PAUSE = 10

# One counter child per kind, looked up once rather than per message.
_COUNTERS = {kind: MESSAGES.labels(kind.value) for kind in Kind}


class OutcomeWriter:
    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner
        self.pending: list[Result] = []
        self.in_flush = 0
        self.flush_now = asyncio.Event()
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.closing = False
        # Issues with a policy refusal seen by this worker: only their runs are reset
        # by later successes (a write per batch otherwise spent on every issue).
        self.policy_seen: set[int] = set()
        # Lease renewal takes this too: both update this worker's rows (in different
        # orders), which PostgreSQL would report as a deadlock if they overlapped.
        self.lock = asyncio.Lock()

    # -- the senders' side ----------------------------------------------------------

    def add(self, result: Result) -> None:
        self.pending.append(result)
        _COUNTERS[result.kind].inc()
        if result.kind is Kind.sent:
            SENT_RATE.add()
        if len(self.pending) >= FLUSH_EVERY_MESSAGES:
            self.flush_now.set()

    @property
    def unwritten(self) -> int:
        return len(self.pending) + self.in_flush

    @property
    def full(self) -> bool:
        return self.unwritten >= FLUSH_EVERY_MESSAGES

    async def wait_for_room(self) -> None:
        while self.full:
            self.has_room.clear()
            await self.has_room.wait()

    # -- the flusher task -----------------------------------------------------------

    async def run(self) -> None:
        """Flush until `close()`, then write what is left and return."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush_now.wait(), timeout=FLUSH_EVERY_SECONDS)
            self.flush_now.clear()
            if self.pending:
                await self.flush()
            if self.closing and not self.pending:
                return

    def close(self) -> None:
        """Nothing more will be added: the flusher writes the rest and ends."""
        self.closing = True
        self.flush_now.set()

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        self.in_flush = len(batch)
        runs = self._policy_runs(batch)
        try:
            async with self.lock:
                totals = await self.store.write_outcomes(self.owner, batch, runs)
        except Exception:
            logger.exception("writing %d outcomes failed; retrying", len(batch))
            self.pending = batch + self.pending
            await asyncio.sleep(1.0)
            return
        finally:
            self.in_flush = 0
            if not self.full:
                self.has_room.set()
        await self._pause_policy_runs(runs, totals)
        finished = {r.job.issue_id for r in batch if r.kind in FINAL_KINDS}
        if finished and await self.store.finish_issues(finished):
            logger.info("issue(s) finished sending: %s", sorted(finished))

    def _policy_runs(self, batch: Sequence[Result]) -> dict[int, PolicyRun]:
        """Per issue, the refusals blaming the sender since its last success in the batch."""
        runs: dict[int, PolicyRun] = {}
        for r in batch:
            if r.kind is Kind.policy:
                issue_id = r.job.issue_id
                before = runs.get(issue_id)
                if before is None:
                    runs[issue_id] = PolicyRun(1, False, r.reply)
                else:
                    runs[issue_id] = PolicyRun(before.refusals + 1, before.reset, r.reply)
                self.policy_seen.add(issue_id)
            elif r.kind is Kind.sent and r.job.issue_id in self.policy_seen:
                before = runs.get(r.job.issue_id)
                runs[r.job.issue_id] = PolicyRun(0, True, before.last_reply if before else "")
        return runs

    async def _pause_policy_runs(self, runs: dict[int, PolicyRun], totals: dict[int, int]) -> None:
        for issue_id, total in totals.items():
            if total < POLICY_REFUSALS_TO_PAUSE:
                continue
            reason = (
                f"paused after {total} consecutive refusals blaming the sender "
                f"(authentication or policy, 5.7.x); last reply: {runs[issue_id].last_reply}. "
                "Fix the SMTP credentials or sender setup (SPF, DKIM, reputation), "
                "then resume."
            )
            if await self.store.pause_issue(issue_id, reason):
                logger.error("issue %d paused: %s", issue_id, reason)
