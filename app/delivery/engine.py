"""The issue delivery engine: claim, personalise, send over a pool, record in batches.

One `DeliveryEngine` per worker process, made of tasks on one event loop:

- the claim loop leases batches of due deliveries of issues that are `sending`
  (keyset order, SKIP LOCKED on PostgreSQL), checks each row at send time
  (subscription still active, address not suppressed), and feeds an in-memory queue;
  it also renews this worker's leases, takes back expired ones, sweeps cancelled
  issues and marks finished issues `sent`;
- SMTP_POOL_SIZE sender tasks, each owning one persistent SMTP connection, take jobs
  from the queue, wait for the rate cap, personalise the prepared issue (bytes
  substitution) and send;
- the outcome buffer is written by one flusher task at least every 0.5 s and every 100
  outcomes, one statement per outcome kind. Senders wait while 100 outcomes are
  unwritten, so a hard crash repeats at most SMTP_POOL_SIZE + 100 messages.

On `stop`: no more claims, jobs not yet started are released (back to queued, no
attempt used), messages in flight finish, outcomes are flushed, and `run()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery import repository
from app.delivery.bounces import BounceKind, record_bounce
from app.delivery.classify import Outcome, Verdict, classify_exception
from app.delivery.metrics import MESSAGES, SENT_RATE, SMTP_LATENCY
from app.delivery.ratecap import RateCap
from app.delivery.smtp import Backoff, SmtpConnection, SmtpUnavailable
from app.kit.aio import wait_any
from app.kit.clock import utcnow
from app.kit.ids import installation_tag
from app.kit.tokens import Signer
from app.models import DeliveryStatus, Issue, IssueStatus, Newsletter
from app.rendering.prepared import PreparedIssue, Recipient, prepare_issue
from app.settings import Settings

logger = logging.getLogger("broadsheet.delivery")

FLUSH_EVERY_SECONDS = 0.5
FLUSH_EVERY_MESSAGES = 100
POLICY_REFUSALS_TO_PAUSE = 10
NOTIFY_CHANNEL = "broadsheet_deliveries"
IDLE_POLL_SECONDS = 0.25  # SQLite, or PostgreSQL without LISTEN
LISTEN_POLL_SECONDS = 0.5  # PostgreSQL with LISTEN: a safety net (and due retries)
HOUSEKEEPING_SECONDS = 1.0
STATUS_REFRESH_SECONDS = 0.25  # pause and cancel take effect within this
DRAIN_SECONDS = 12.0  # senders, then the final flush: well inside the 30 s SIGTERM budget


@dataclass(slots=True)
class Job:
    id: int
    issue_id: int
    subscription_id: int
    attempts: int
    email: str
    name: str


# Outcome kinds in the buffer.
SENT, RETRY, FAILED, BOUNCED, SKIPPED, RELEASE, POLICY = (
    "sent",
    "retry",
    "failed",
    "bounced",
    "skipped",
    "release",
    "policy",
)


@dataclass(slots=True)
class Result:
    kind: str
    job: Job
    reply: str = ""
    message_id: str | None = None
    delay: float = 0.0  # RELEASE / POLICY: seconds before the row is due again
    soft: bool = False  # FAILED after 4xx replies from the recipient's side


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.owner = owner or worker_id()
        self.signer = Signer(settings.secret, settings.previous_secrets)
        self.ratecap = RateCap(settings, sessionmaker)
        self.backoff = Backoff()
        self.pool_size = settings.smtp_pool_size
        batch = settings.batch_size
        if settings.send_rate > 0:
            # Hold no more than a couple of seconds of capped sending at a time.
            batch = min(batch, max(self.pool_size, int(settings.send_rate * 2)))
        self.batch = batch
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.prepared: dict[int, PreparedIssue] = {}
        self.issue_status: dict[int, str] = {}
        self.cursor = 0
        self.wake = asyncio.Event()
        self.stopping = False
        # Outcome buffer.
        self.pending: list[Result] = []
        self.in_flush = 0
        self.flush_now = asyncio.Event()
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.closing = False
        self.policy_seen: set[int] = set()
        self.in_flight: dict[asyncio.Task[None], Job] = {}
        self._last_renew = 0.0
        self._last_reclaim = 0.0
        self._last_refresh = 0.0
        self.low_water = max(self.batch // 2, self.pool_size)
        self.queue_low = asyncio.Event()
        self.write_lock = asyncio.Lock()
        self._listen_conn: Any = None

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        listening = await self._listen()
        poll = LISTEN_POLL_SECONDS if listening else IDLE_POLL_SECONDS
        flusher = asyncio.create_task(self._flusher(), name="outcome-flusher")
        senders = [
            asyncio.create_task(self._sender(i), name=f"smtp-{i}") for i in range(self.pool_size)
        ]
        try:
            while not stop.is_set():
                try:
                    busy = await self._claim_round()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("claim round failed; retrying shortly")
                    busy = False
                    await wait_any(stop, self.wake, 1.0)
                if not busy:
                    await wait_any(stop, self.wake, poll)
        finally:
            await self._drain(senders, flusher)
            await self._unlisten()

    async def _drain(self, senders: list[asyncio.Task[None]], flusher: asyncio.Task[None]) -> None:
        """Stop cleanly: release what was not started, finish what is in flight, flush."""
        self.stopping = True
        released = 0
        while True:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if job is not None:
                self._add(Result(RELEASE, job, reply="released at shutdown"))
                released += 1
        for _ in senders:
            self.queue.put_nowait(None)
        if senders:
            _done, stuck = await asyncio.wait(senders, timeout=DRAIN_SECONDS)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
        for job in self.in_flight.values():
            # Cut off mid-send: unknown whether it went out; give it back (it may repeat).
            self._add(Result(RELEASE, job, reply="interrupted at shutdown"))
        self.in_flight.clear()
        self.closing = True
        self.flush_now.set()
        try:
            await asyncio.wait_for(flusher, timeout=DRAIN_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            logger.error("outcomes could not be written at shutdown; leases will expire")
        if released:
            logger.info("released %d claimed deliveries at shutdown", released)

    async def _listen(self) -> bool:
        """PostgreSQL: LISTEN on a raw asyncpg connection so a send starts at once."""
        if self.engine.dialect.name != "postgresql":
            return False
        try:
            import asyncpg

            url = self.engine.url.set(drivername="postgresql")
            dsn = url.render_as_string(hide_password=False)
            self._listen_conn = await asyncpg.connect(dsn)
            await self._listen_conn.add_listener(NOTIFY_CHANNEL, self._notified)
            return True
        except Exception:
            logger.warning("LISTEN unavailable; polling for new sends", exc_info=True)
            self._listen_conn = None
            return False

    def _notified(self, *_args: Any) -> None:
        self.wake.set()

    async def _unlisten(self) -> None:
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen_conn.close(), timeout=2)
            self._listen_conn = None

    # -- claiming -------------------------------------------------------------------

    async def _claim_round(self) -> bool:
        """Housekeeping, then one claim if the local queue runs low; True when busy."""
        await self._housekeeping()
        if self.backoff.is_down:
            return False
        mono = time.monotonic()
        if self.wake.is_set() or mono - self._last_refresh >= STATUS_REFRESH_SECONDS:
            self._last_refresh = mono
            self.wake.clear()
            await self._refresh_statuses()
        sending = [i for i, s in self.issue_status.items() if s == IssueStatus.sending.value]
        if not sending:
            return False
        if self.queue.qsize() >= self.low_water:
            # Enough work in hand: wait until the senders have taken some of it.
            self.queue_low.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue_low.wait(), timeout=STATUS_REFRESH_SECONDS)
            return True
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            rows = await repository.claim_batch(
                session,
                owner=self.owner,
                issue_ids=sending,
                after_id=self.cursor,
                limit=self.batch,
                lease_seconds=self.settings.lease_seconds,
                now=now,
            )
        after = self.cursor
        self.cursor = rows[-1].id if len(rows) >= self.batch else 0
        if not rows:
            if after > 0:
                return True  # sweep from the start at once
            await self._finish(sending)
            return False
        await self._prepare({row.issue_id for row in rows})
        for row in rows:
            job = Job(row.id, row.issue_id, row.subscription_id, row.attempts, row.email, row.name)
            if row.subscription_status != "active":
                self._add(Result(SKIPPED, job, reply=f"subscription {row.subscription_status}"))
            elif row.suppressed:
                self._add(Result(SKIPPED, job, reply="address suppressed"))
            elif row.issue_id not in self.prepared:
                self._add(Result(RELEASE, job, reply="issue could not be prepared", delay=30))
            else:
                self.queue.put_nowait(job)
        return True

    async def _refresh_statuses(self) -> None:
        """Which issues are sending now, and the state of those this worker holds rows of."""
        async with self.sessionmaker() as session:
            sending = await repository.sending_issue_ids(session)
            held = {job.issue_id for job in self.in_flight.values()} | set(self.prepared)
            statuses = await repository.issue_statuses(session, sorted(held - set(sending)))
        self.issue_status = {**statuses, **dict.fromkeys(sending, IssueStatus.sending.value)}
        for issue_id, status in list(self.issue_status.items()):
            if status in (IssueStatus.sent.value, IssueStatus.cancelled.value):
                self.prepared.pop(issue_id, None)

    async def _prepare(self, issue_ids: set[int]) -> None:
        """The prepared issue, built once per issue per worker (the expensive part)."""
        missing = issue_ids - set(self.prepared)
        if not missing:
            return
        installation = await installation_tag(self.engine)  # read once per process
        async with self.sessionmaker() as session:
            for issue_id in missing:
                issue = await session.get(Issue, issue_id)
                newsletter = await session.get(Newsletter, issue.newsletter_id) if issue else None
                if issue is None or newsletter is None:
                    continue
                try:
                    self.prepared[issue_id] = prepare_issue(
                        issue, newsletter, self.settings, self.signer, installation=installation
                    )
                except Exception as exc:
                    logger.exception("issue %d cannot be prepared; pausing it", issue_id)
                    async with self.sessionmaker() as other, other.begin():
                        await repository.pause_issue(
                            other, issue_id, f"could not prepare the message: {exc}", utcnow()
                        )

    async def _housekeeping(self) -> None:
        mono = time.monotonic()
        lease = self.settings.lease_seconds
        if mono - self._last_renew >= min(lease / 3, 10) and self.in_flight_or_queued():
            self._last_renew = mono
            # Never at the same time as an outcome flush: both update this worker's rows
            # (in different orders), which PostgreSQL would report as a deadlock.
            async with self.write_lock, self.sessionmaker() as session, session.begin():
                await repository.renew_leases(
                    session, self.owner, utcnow() + timedelta(seconds=lease)
                )
        if mono - self._last_reclaim >= HOUSEKEEPING_SECONDS:
            self._last_reclaim = mono
            now = utcnow()
            async with self.sessionmaker() as session, session.begin():
                taken = await repository.reclaim_expired(session, now, except_owner=self.owner)
                if taken:
                    # Rows of a dead worker may belong to an issue cancelled meanwhile.
                    await repository.cancel_leftovers(session, now)
            if taken:
                logger.warning("took back %d deliveries whose lease expired", taken)

    def in_flight_or_queued(self) -> bool:
        return bool(self.in_flight) or not self.queue.empty() or bool(self.pending)

    async def _finish(self, issue_ids: Sequence[int]) -> None:
        if not issue_ids:
            return
        async with self.sessionmaker() as session, session.begin():
            done = await repository.finish_issues(session, issue_ids, utcnow())
        if done:
            logger.info("issue(s) finished sending: %s", list(issue_ids))

    # -- sending --------------------------------------------------------------------

    async def _sender(self, index: int) -> None:
        connection = SmtpConnection(
            self.settings.smtp_targets,
            timeout=self.settings.smtp_timeout_seconds,
            local_hostname=self.settings.base_host,
        )
        task = asyncio.current_task()
        assert task is not None
        try:
            while True:
                job = await self.queue.get()
                if self.queue.qsize() < self.low_water:
                    self.queue_low.set()
                if job is None:
                    return
                self.in_flight[task] = job
                try:
                    await self._send(connection, job)
                except Exception as exc:  # a bug; never lose the row over it
                    logger.exception("sending delivery %d failed unexpectedly", job.id)
                    connection.drop()
                    # Counted as an attempt, so a row that always fails ends `failed`.
                    reply = f"internal error: {type(exc).__name__}: {exc}"[:500]
                    self._add(self._failure(job, Outcome(Verdict.retry, None, reply), None))
                finally:
                    self.in_flight.pop(task, None)
        finally:
            await connection.close()

    async def _send(self, connection: SmtpConnection, job: Job) -> None:
        if self.stopping:
            self._add(Result(RELEASE, job, reply="released at shutdown"))
            return
        if self.issue_status.get(job.issue_id) != IssueStatus.sending.value:
            self._add(Result(RELEASE, job, reply="issue not sending"))
            return
        if self.backoff.is_down:
            self._add(Result(RELEASE, job, reply="SMTP unreachable", delay=self.backoff.delay))
            return
        while self.pending_count() >= FLUSH_EVERY_MESSAGES:
            self.has_room.clear()
            await self.has_room.wait()
        await self.ratecap.acquire(job.email)
        prepared = self.prepared[job.issue_id]
        message_id = prepared.message_id(job.id)
        try:
            data = prepared.personalise(
                Recipient(job.id, job.subscription_id, job.email, job.name), message_id=message_id
            )
        except Exception as exc:
            logger.exception("delivery %d: the message could not be built", job.id)
            reply = f"could not build the message: {type(exc).__name__}: {exc}"[:500]
            self._add(Result(FAILED, job, reply=reply))
            return
        started = time.perf_counter()
        try:
            reply = await connection.sendmail(prepared.envelope_from, job.email, data)
        except SmtpUnavailable as exc:
            if exc.auth_refused is not None:
                outcome = classify_exception(exc.auth_refused)
                self._add(self._policy(job, outcome, message_id))
                return
            delay = self.backoff.failed()
            logger.warning("SMTP unreachable, backing off %.1fs: %s", delay, exc)
            self._add(Result(RELEASE, job, reply=f"SMTP unreachable: {exc}"[:500], delay=delay))
            return
        except Exception as exc:
            SMTP_LATENCY.observe(time.perf_counter() - started)
            outcome = classify_exception(exc)
            if outcome.closes_connection:
                connection.drop()
            self._add(self._failure(job, outcome, message_id))
            return
        SMTP_LATENCY.observe(time.perf_counter() - started)
        self.backoff.succeeded()
        self._add(Result(SENT, job, reply=reply[:500], message_id=message_id))

    def _failure(self, job: Job, outcome: Outcome, message_id: str | None) -> Result:
        if outcome.verdict is Verdict.bounce:
            return Result(BOUNCED, job, reply=outcome.reply, message_id=message_id)
        if outcome.verdict is Verdict.policy:
            return self._policy(job, outcome, message_id)
        if outcome.verdict is Verdict.unreachable:
            return Result(RELEASE, job, reply=outcome.reply, delay=self.backoff.failed())
        if job.attempts + 1 >= self.settings.max_attempts:
            soft = outcome.code is not None and 400 <= outcome.code < 500
            return Result(FAILED, job, reply=outcome.reply, message_id=message_id, soft=soft)
        return Result(RETRY, job, reply=outcome.reply)

    def _policy(self, job: Job, outcome: Outcome, message_id: str | None) -> Result:
        delay = max(1.0, self.settings.retry_backoff_seconds)
        return Result(POLICY, job, reply=outcome.reply, message_id=message_id, delay=delay)

    # -- outcomes -------------------------------------------------------------------

    def pending_count(self) -> int:
        return len(self.pending) + self.in_flush

    def _add(self, result: Result) -> None:
        self.pending.append(result)
        MESSAGES.labels(result.kind).inc()
        if result.kind == SENT:
            SENT_RATE.add()
        if len(self.pending) >= FLUSH_EVERY_MESSAGES:
            self.flush_now.set()

    async def _flusher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush_now.wait(), timeout=FLUSH_EVERY_SECONDS)
            self.flush_now.clear()
            if self.pending:
                await self._flush()
            elif self.closing:
                return
            if self.closing and not self.pending:
                return

    async def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.in_flush = len(batch)
        try:
            async with self.write_lock:
                finished = await self._write(batch)
        except Exception:
            logger.exception("writing %d outcomes failed; retrying", len(batch))
            self.pending = batch + self.pending
            await asyncio.sleep(1.0)
            return
        finally:
            self.in_flush = 0
            if self.pending_count() < FLUSH_EVERY_MESSAGES:
                self.has_room.set()
        if finished:
            await self._finish(sorted(finished))

    async def _write(self, batch: list[Result]) -> set[int]:
        """Write one batch of outcomes in one transaction; issues that may now be done."""
        now = utcnow()
        owner = self.owner
        sent: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        release: list[dict[str, Any]] = []
        requeue: list[dict[str, Any]] = []
        final: list[dict[str, Any]] = []
        touched: set[int] = set()
        sent_subscriptions: list[int] = []
        policy_runs: dict[int, tuple[int, bool, str]] = {}
        for r in batch:
            job = r.job
            base = {"b_id": job.id, "b_owner": owner, "b_now": now}
            if r.kind == SENT:
                sent.append(
                    base
                    | {
                        "b_attempts": job.attempts + 1,
                        "b_message_id": r.message_id,
                        "b_reply": r.reply,
                    }
                )
                sent_subscriptions.append(job.subscription_id)
                run, _reset, reply = policy_runs.get(job.issue_id, (0, False, ""))
                policy_runs[job.issue_id] = (0, True, reply)
                touched.add(job.issue_id)
            elif r.kind == RETRY:
                delay = self.settings.retry_backoff_seconds * 2**job.attempts
                retry.append(
                    base
                    | {
                        "b_attempts": job.attempts + 1,
                        "b_reply": r.reply,
                        "b_next": now + timedelta(seconds=delay),
                    }
                )
            elif r.kind in (RELEASE, POLICY):
                row = base | {"b_next": now + timedelta(seconds=r.delay)}
                if r.kind == POLICY or r.delay > 0:
                    requeue.append(row | {"b_reply": r.reply})
                else:
                    release.append(row)
                if r.kind == POLICY:
                    run, reset, _ = policy_runs.get(job.issue_id, (0, False, ""))
                    policy_runs[job.issue_id] = (run + 1, reset, r.reply)
            else:
                status = {
                    FAILED: DeliveryStatus.failed,
                    BOUNCED: DeliveryStatus.bounced,
                    SKIPPED: DeliveryStatus.skipped,
                }[r.kind].value
                attempts = job.attempts if r.kind == SKIPPED else job.attempts + 1
                final.append(
                    base
                    | {
                        "b_status": status,
                        "b_attempts": attempts,
                        "b_message_id": r.message_id,
                        "b_reply": r.reply,
                    }
                )
                touched.add(job.issue_id)
        for rows in (sent, retry, release, requeue, final):
            rows.sort(key=lambda row: int(row["b_id"]))  # one lock order for every writer
        async with self.sessionmaker() as session, session.begin():
            await repository.write_outcomes(session, repository.MARK_SENT, sent)
            await repository.write_outcomes(session, repository.MARK_RETRY, retry)
            await repository.write_outcomes(session, repository.MARK_RELEASE, release)
            await repository.write_outcomes(session, repository.MARK_REQUEUE, requeue)
            if release:
                # Rows handed back because their issue was cancelled end cancelled now.
                await repository.cancel_leftovers(session, now)
            await repository.write_outcomes(session, repository.MARK_FINAL, final)
            await repository.reset_soft_bounces(session, sent_subscriptions)
            for r in batch:
                if r.kind == BOUNCED:
                    await record_bounce(
                        session,
                        email=r.job.email,
                        kind=BounceKind.hard,
                        detail=r.reply,
                        now=now,
                        issue_id=r.job.issue_id,
                        delivery_id=r.job.id,
                        subscription_id=r.job.subscription_id,
                    )
                elif r.kind == FAILED and r.soft:
                    await record_bounce(
                        session,
                        email=r.job.email,
                        kind=BounceKind.soft,
                        detail=r.reply,
                        now=now,
                        issue_id=r.job.issue_id,
                        delivery_id=r.job.id,
                        subscription_id=r.job.subscription_id,
                    )
            for issue_id, (run, reset, reply) in policy_runs.items():
                if run == 0 and (not reset or issue_id not in self.policy_seen):
                    continue
                self.policy_seen.add(issue_id)
                total = await repository.record_policy_refusals(
                    session, issue_id, run, reset=reset, now=now
                )
                if total >= POLICY_REFUSALS_TO_PAUSE:
                    reason = (
                        f"paused after {total} consecutive refusals blaming the sender "
                        f"(authentication or policy, 5.7.x); last reply: {reply}. "
                        "Fix the SMTP credentials or sender setup (SPF, DKIM, reputation), "
                        "then resume."
                    )
                    if await repository.pause_issue(session, issue_id, reason[:1000], now):
                        logger.error("issue %d paused: %s", issue_id, reason)
        return touched


def notify_statement() -> str:
    """The SQL that wakes every listening worker (PostgreSQL), delivered on commit."""
    return f"NOTIFY {NOTIFY_CHANNEL}"
