"""The claimer: leases batches of due deliveries and feeds the sender pool.

It claims deliveries of issues that are `sending` (keyset order, SKIP LOCKED on
PostgreSQL), leaving in the queue those of recipient and From domains over a send cap
(DOMAIN_RATES, WARMUP) until they may send, applies the send-time checks the store
reports (subscription still active, address not suppressed), prepares each issue once,
and keeps house: renews this worker's leases, takes back other workers' expired ones,
sweeps cancelled issues and marks finished issues `sent`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from app.delivery.outcomes import Kind, Result
from app.delivery.ratecap import Hold, domain_of
from app.delivery.retry import Backoff
from app.delivery.senders import IssueBook, SenderPool
from app.delivery.store import Store
from app.delivery.writer import OutcomeWriter
from app.kit.aio import wait_any
from app.kit.tokens import Signer
from app.models import IssueStatus
from app.rendering.prepared import prepare_issue
from app.settings import Settings

logger = logging.getLogger("broadsheet.delivery")

HOUSEKEEPING_SECONDS = 1.0
STATUS_REFRESH_SECONDS = 0.25  # pause and cancel take effect within this
_DONE = (IssueStatus.sent.value, IssueStatus.cancelled.value)
_NOTHING_HELD = Hold()


class Claimer:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        owner: str,
        *,
        book: IssueBook,
        pool: SenderPool,
        writer: OutcomeWriter,
        backoff: Backoff,
        batch: int,
    ) -> None:
        self.settings = settings
        self.store = store
        self.owner = owner
        self.book = book
        self.pool = pool
        self.writer = writer
        self.backoff = backoff
        self.batch = batch
        self.signer = Signer(settings.secret, settings.previous_secrets)
        self.cursor = 0
        self.wake = asyncio.Event()
        self._last_renew = 0.0
        self._last_reclaim = 0.0
        self._last_refresh = 0.0

    async def run(self, stop: asyncio.Event, poll: float) -> None:
        """Claim rounds until `stop`; idle rounds wait for a wake-up or `poll` seconds."""
        while not stop.is_set():
            try:
                busy = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("claim round failed; retrying shortly")
                busy = False
                await wait_any(stop, self.wake, 1.0)
            if not busy:
                await wait_any(stop, self.wake, self._idle_wait(poll))

    async def round(self) -> bool:
        """Housekeeping, then one claim if the local queue runs low; True when busy."""
        await self._housekeeping()
        if self.backoff.is_down:
            return False
        mono = time.monotonic()
        if self.wake.is_set() or mono - self._last_refresh >= STATUS_REFRESH_SECONDS:
            self._last_refresh = mono
            self.wake.clear()
            await self._refresh_statuses()
        sending = [i for i in self.book.status if self.book.is_sending(i)]
        if not sending:
            return False
        if self.pool.backlog >= self.pool.low_water:
            await self.pool.wait_below_low_water(STATUS_REFRESH_SECONDS)
            return True
        hold = self._hold()
        claimable = self._claimable(sending, hold)
        if not claimable:
            return False  # every sending issue's From domain is over its day's cap
        claims = await self.store.claim(
            self.owner,
            claimable,
            after_id=self.cursor,
            limit=self.batch,
            lease_seconds=self.settings.lease_seconds,
            skip_domains=sorted(hold.recipient_domains),
        )
        after = self.cursor
        self.cursor = claims[-1].job.id if len(claims) >= self.batch else 0
        if not claims:
            if after > 0:
                return True  # sweep from the start at once
            await self._finish(sending)
            return False
        await self._prepare({claim.job.issue_id for claim in claims})
        prepared = self.book.prepared
        for claim in claims:
            job = claim.job
            if claim.skip is not None:
                self.writer.add(Result(Kind.skipped, job, reply=claim.skip))
            elif job.issue_id not in prepared:
                reply = "issue could not be prepared"
                self.writer.add(Result(Kind.release, job, reply=reply, retry_in=30))
            else:
                self.pool.offer(job)
        return True

    def _hold(self) -> Hold:
        limiter = self.pool.limiter
        return limiter.held() if limiter is not None else _NOTHING_HELD

    def _claimable(self, sending: list[int], hold: Hold) -> list[int]:
        """The sending issues whose From domain may send now (WARMUP holds the others)."""
        if not hold.from_domains:
            return sending
        prepared = self.book.prepared
        return [
            i
            for i in sending
            if i not in prepared or domain_of(prepared[i].envelope_from) not in hold.from_domains
        ]

    def _idle_wait(self, poll: float) -> float:
        """Nothing to claim: wait `poll`, or less when a held domain may send sooner."""
        lifts_in = self._hold().lifts_in
        return poll if lifts_in is None else max(0.01, min(poll, lifts_in))

    async def _refresh_statuses(self) -> None:
        """Which issues are sending now, and the state of those this worker holds rows of."""
        held = self.pool.held_issue_ids() | set(self.book.prepared)
        self.book.status = await self.store.issue_statuses(held)
        for issue_id, status in self.book.status.items():
            if status in _DONE:
                self.book.prepared.pop(issue_id, None)

    async def _prepare(self, issue_ids: set[int]) -> None:
        """The prepared issue, built once per issue per worker (the expensive part)."""
        missing = issue_ids - set(self.book.prepared)
        if not missing:
            return
        installation = await self.store.installation()
        for issue_id in missing:
            loaded = await self.store.load_issue(issue_id)
            if loaded is None:
                continue
            issue, newsletter = loaded
            try:
                self.book.prepared[issue_id] = prepare_issue(
                    issue, newsletter, self.settings, self.signer, installation=installation
                )
            except Exception as exc:
                logger.exception("issue %d cannot be prepared; pausing it", issue_id)
                await self.store.pause_issue(issue_id, f"could not prepare the message: {exc}")

    async def _housekeeping(self) -> None:
        mono = time.monotonic()
        lease = self.settings.lease_seconds
        if mono - self._last_renew >= min(lease / 3, 10) and (
            self.pool.busy() or self.writer.pending
        ):
            self._last_renew = mono
            # Never at the same time as an outcome flush (see `OutcomeWriter.lock`).
            async with self.writer.lock:
                await self.store.renew_leases(self.owner, lease)
        if mono - self._last_reclaim >= HOUSEKEEPING_SECONDS:
            self._last_reclaim = mono
            # Never this worker's own rows: it still holds them in memory, and when its
            # lease ran out only because the database was unreachable for a while, some
            # are already with the SMTP server, their outcomes waiting to be written.
            taken = await self.store.reclaim_expired(self.owner)
            if taken:
                logger.warning("took back %d deliveries whose lease expired", taken)

    async def _finish(self, issue_ids: Sequence[int]) -> None:
        if issue_ids and await self.store.finish_issues(issue_ids):
            logger.info("issue(s) finished sending: %s", list(issue_ids))
