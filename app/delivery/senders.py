"""The sender pool: one task per SMTP connection, each owning one transport.

It starts with SMTP_POOL_SIZE and grows or shrinks between 1 and SMTP_MAX_CONNECTIONS as
`adaptive.ConnectionTuner` decides (SPEC section 13). Each sender takes jobs from the
claimer's queue, checks the caps, personalises the prepared issue (bytes substitution),
sends, and hands the result to the outcome writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import NamedTuple, Protocol, TypeVar

from app.delivery.adaptive import ConnectionTuner
from app.delivery.classify import Outcome, Verdict
from app.delivery.metrics import SMTP_LATENCY
from app.delivery.outcomes import Job, Kind, Result
from app.delivery.ratecap import Capped, Hold
from app.delivery.retry import Backoff, RetryPolicy, Step
from app.delivery.transport import Outgoing, Transport, TransportFactory
from app.delivery.writer import OutcomeWriter
from app.models import IssueStatus
from app.rendering.prepared import PreparedIssue, Recipient

logger = logging.getLogger("broadsheet.delivery")

TUNE_SECONDS = 0.1  # how often the tuner looks at the pool
DRAIN_SECONDS = 12.0
_T = TypeVar("_T")  # senders, then the final flush: well inside the 30 s SIGTERM budget
_SENDING = IssueStatus.sending.value
# Kinds whose row keeps the Message-ID of the message that went out.
_WITH_MESSAGE_ID = frozenset({Kind.sent, Kind.bounced, Kind.failed, Kind.policy})


class Limiter(Protocol):
    """The send caps (`ratecap.RateCap`): a capped domain is answered at once, never
    waited for (SEND_RATE alone may wait: it holds all mail alike)."""

    async def try_acquire(self, email: str, sender: str) -> Capped | None:
        """None when a message from `sender` to `email` may go now (its share taken);
        else how long it must wait in the queue."""
        ...

    def held(self) -> Hold:
        """The recipient and From domains over their cap now, for the claim to skip."""
        ...


class IssueBook:
    """What the claimer knows of the issues it hands out jobs of, read by the senders."""

    def __init__(self) -> None:
        self.status: dict[int, str] = {}
        self.prepared: dict[int, PreparedIssue] = {}

    def is_sending(self, issue_id: int) -> bool:
        return self.status.get(issue_id) == _SENDING


class SenderPool:
    def __init__(
        self,
        size: int,
        transports: TransportFactory,
        *,
        book: IssueBook,
        writer: OutcomeWriter,
        policy: RetryPolicy,
        backoff: Backoff,
        limiter: Limiter | None,
        low_water: int,
        ceiling: int | None = None,
    ) -> None:
        self.size = size
        self.tuner = ConnectionTuner(size, ceiling or size, now=time.monotonic())
        self.retiring = 0  # senders asked to close their connection and end
        self.spawned = 0
        self.tuning: asyncio.Task[None] | None = None
        self.transports = transports
        self.book = book
        self.writer = writer
        self.policy = policy
        self.backoff = backoff
        self.limiter = limiter
        self.low_water = low_water
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.queue_low = asyncio.Event()
        # Per sender: the job being sent, and the next one when it was announced with it.
        self.in_flight: dict[asyncio.Task[None], list[Job]] = {}
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []

    # -- the claimer's side ---------------------------------------------------------

    def start(self) -> None:
        for _ in range(self.size):
            self._spawn()
        if self.tuner.ceiling > 1:
            self.tuning = asyncio.create_task(self._tune(), name="smtp-tuner")

    def _spawn(self) -> None:
        self.spawned += 1
        name = f"smtp-{self.spawned}"
        self.tasks.append(asyncio.create_task(self._sender(self.transports()), name=name))

    @property
    def connections(self) -> int:
        """Senders (connections) this pool keeps now."""
        return sum(not task.done() for task in self.tasks) - self.retiring

    async def _tune(self) -> None:
        tuner = self.tuner
        while not self.stopping:
            await asyncio.sleep(TUNE_SECONDS)
            size = tuner.tick(time.monotonic(), waiting=self.queue.qsize() > 0)
            if size is None or self.stopping:
                continue
            self.tasks = [task for task in self.tasks if not task.done()]  # retired ones
            change = size - self.connections
            cancel = min(self.retiring, max(change, 0))
            self.retiring -= cancel
            for _ in range(change - cancel):
                self._spawn()
            if change < 0:
                self.retiring -= change

    def offer(self, job: Job) -> None:
        self.queue.put_nowait(job)

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    async def wait_below_low_water(self, timeout: float) -> None:
        """Enough work in hand: wait (a while at most) until the senders took some of it."""
        self.queue_low.clear()
        try:
            await asyncio.wait_for(self.queue_low.wait(), timeout=timeout)
        except TimeoutError:
            pass

    def held_issue_ids(self) -> set[int]:
        return {job.issue_id for jobs in self.in_flight.values() for job in jobs}

    def busy(self) -> bool:
        return bool(self.in_flight) or not self.queue.empty()

    async def drain(self) -> None:
        """Release what was not started, let what is in flight finish (or cut it off)."""
        self.stopping = True
        if self.tuning is not None:
            self.tuning.cancel()
        released = 0
        while True:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if job is not None:
                self.writer.add(Result(Kind.release, job, reply="released at shutdown"))
                released += 1
        for _ in self.tasks:
            self.queue.put_nowait(None)
        if self.tasks:
            _done, stuck = await asyncio.wait(self.tasks, timeout=DRAIN_SECONDS)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for job in (job for jobs in self.in_flight.values() for job in jobs):
            # Cut off mid-send: unknown whether it went out; give it back (it may repeat).
            self.writer.add(Result(Kind.release, job, reply="interrupted at shutdown"))
        self.in_flight.clear()
        if released:
            logger.info("released %d claimed deliveries at shutdown", released)

    # -- one sender task ------------------------------------------------------------

    async def _sender(self, transport: Transport) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            while True:
                if self.retiring > 0:
                    self.retiring -= 1
                    return
                job = await self.queue.get()
                self._took()
                if job is None:
                    return
                held = self.in_flight[task] = [job]
                try:
                    await self._run(transport, held)
                finally:
                    self.in_flight.pop(task, None)
        finally:
            await transport.close()

    def _took(self) -> None:
        if self.queue.qsize() < self.low_water:
            self.queue_low.set()

    def _take_next(self) -> Job | None:
        """The next job when one waits already (never while stopping)."""
        if self.stopping or self.queue.empty():
            return None
        job = self.queue.get_nowait()
        self._took()
        if job is None:
            self.queue.put_nowait(None)  # a stop for whichever sender asks next
        return job

    async def _run(self, transport: Transport, held: list[Job]) -> None:
        """Send `held[0]`; while mail waits, each next message is announced with the one
        before (its envelope goes out with that one's content: one round trip less)."""
        ready = await self._guarded(held[0], self._ready(held[0]))
        while ready is not None:
            after: _Ready | None = None
            upcoming = self._take_next()
            if upcoming is not None:
                held.append(upcoming)
                after = await self._guarded(upcoming, self._ready(upcoming))
            await self._guarded(ready.job, self._deliver(transport, ready, after))
            held.remove(ready.job)
            ready = after

    async def _guarded(self, job: Job, step: Awaitable[_T]) -> _T | None:
        try:
            return await step
        except Exception as exc:  # a bug; never lose the row over it
            logger.exception("sending delivery %d failed unexpectedly", job.id)
            # Counted as an attempt, so a row that always fails ends `failed`.
            reply = f"internal error: {type(exc).__name__}: {exc}"[:500]
            outcome = Outcome(Verdict.retry, None, reply)
            step_ = self.policy.settle(outcome, job.attempts, self.backoff)
            self.writer.add(_result(job, outcome, step_, None))
            return None

    async def _ready(self, job: Job) -> _Ready | None:
        """The message for `job`, or None when it is not to go now (its result written)."""
        writer = self.writer
        if self.stopping:
            writer.add(Result(Kind.release, job, reply="released at shutdown"))
            return None
        if not self.book.is_sending(job.issue_id):
            writer.add(Result(Kind.release, job, reply="issue not sending"))
            return None
        backoff = self.backoff
        if backoff.is_down:
            writer.add(Result(Kind.release, job, reply="SMTP unreachable", retry_in=backoff.delay))
            return None
        if writer.full:
            await writer.wait_for_room()
        prepared = self.book.prepared[job.issue_id]
        if self.limiter is not None:
            capped = await self.limiter.try_acquire(job.email, prepared.envelope_from)
            if capped is not None:
                # Over a cap: back to the queue, due later, no attempt used and no
                # connection held meanwhile (the claim skips its domain until then).
                writer.add(Result(Kind.release, job, reply=capped.reason, retry_in=capped.wait))
                return None
        message_id = prepared.message_id(job.id)
        try:
            data = prepared.personalise(
                Recipient(job.id, job.subscription_id, job.email, job.name), message_id=message_id
            )
        except Exception as exc:
            logger.exception("delivery %d: the message could not be built", job.id)
            reply = f"could not build the message: {type(exc).__name__}: {exc}"[:500]
            writer.add(Result(Kind.failed, job, reply=reply))
            return None
        return _Ready(job, Outgoing(prepared.envelope_from, job.email, data), message_id)

    async def _deliver(self, transport: Transport, ready: _Ready, after: _Ready | None) -> None:
        started = time.perf_counter()
        message = ready.message
        then = after.message if after is not None else None
        outcome = await transport.send(*message, then=then)
        self.tuner.observe(outcome)
        if not outcome.before_send:
            SMTP_LATENCY.observe(time.perf_counter() - started)
        step = self.policy.settle(outcome, ready.job.attempts, self.backoff)
        self.writer.add(_result(ready.job, outcome, step, ready.message_id))


class _Ready(NamedTuple):
    job: Job
    message: Outgoing
    message_id: str


def _result(job: Job, outcome: Outcome, step: Step, message_id: str | None) -> Result:
    kind = step.kind
    code = outcome.code
    return Result(
        kind,
        job,
        reply=outcome.reply,
        message_id=message_id if kind in _WITH_MESSAGE_ID else None,
        retry_in=step.retry_in,
        soft=kind is Kind.failed and code is not None and 400 <= code < 500,
    )
