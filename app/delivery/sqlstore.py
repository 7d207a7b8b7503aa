"""`Store` on the database: SQLAlchemy sessions, the repository's statements, and
PostgreSQL's LISTEN/NOTIFY (through a raw asyncpg connection) stay in here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery import claim_repository, repository
from app.delivery.outcomes import Claim, Job, Kind, OutboxItem, Result
from app.delivery.store import PolicyRun
from app.kit.clock import utcnow
from app.kit.ids import installation_tag
from app.models import (
    DeliveryStatus,
    Issue,
    IssueStatus,
    Newsletter,
    OutboxMessage,
    OutboxStatus,
    SubscriptionStatus,
)
from app.subscribers.bounces import BounceKind, record_bounce

logger = logging.getLogger("broadsheet.delivery")

NOTIFY_CHANNEL = "broadsheet_deliveries"

_FINAL_STATUS = {
    Kind.failed: DeliveryStatus.failed.value,
    Kind.bounced: DeliveryStatus.bounced.value,
    Kind.skipped: DeliveryStatus.skipped.value,
}
_ACTIVE = SubscriptionStatus.active.value


def notify_statement() -> str:
    """The SQL that wakes every listening worker (PostgreSQL), delivered on commit."""
    return f"NOTIFY {NOTIFY_CHANNEL}"


class SqlStore:
    """The delivery engine's `Store` on PostgreSQL or SQLite."""

    def __init__(self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self._listen_conn: Any = None

    # -- waking up ------------------------------------------------------------------

    async def listen(self, wake: Callable[[], None]) -> bool:
        """PostgreSQL: LISTEN on a raw asyncpg connection so a send starts at once."""
        if self.engine.dialect.name != "postgresql":
            return False
        try:
            import asyncpg

            url = self.engine.url.set(drivername="postgresql")
            dsn = url.render_as_string(hide_password=False)
            self._listen_conn = await asyncpg.connect(dsn)
            await self._listen_conn.add_listener(NOTIFY_CHANNEL, lambda *_args: wake())
            return True
        except Exception:
            logger.warning("LISTEN unavailable; polling for new sends", exc_info=True)
            self._listen_conn = None
            return False

    async def unlisten(self) -> None:
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen_conn.close(), timeout=2)
            self._listen_conn = None

    # -- issues ---------------------------------------------------------------------

    async def installation(self) -> str:
        return await installation_tag(self.engine)

    async def issue_statuses(self, also: Collection[int]) -> dict[int, str]:
        async with self.sessionmaker() as session:
            sending = await repository.sending_issue_ids(session)
            others = await repository.issue_statuses(session, sorted(set(also) - set(sending)))
        return {**others, **dict.fromkeys(sending, IssueStatus.sending.value)}

    async def load_issue(self, issue_id: int) -> tuple[Issue, Newsletter] | None:
        async with self.sessionmaker() as session:
            issue = await session.get(Issue, issue_id)
            newsletter = await session.get(Newsletter, issue.newsletter_id) if issue else None
        if issue is None or newsletter is None:
            return None
        return issue, newsletter

    async def pause_issue(self, issue_id: int, reason: str) -> bool:
        async with self.sessionmaker() as session, session.begin():
            return await repository.pause_issue(session, issue_id, reason[:1000], utcnow())

    async def finish_issues(self, issue_ids: Collection[int]) -> int:
        if not issue_ids:
            return 0
        async with self.sessionmaker() as session, session.begin():
            return await repository.finish_issues(session, sorted(issue_ids), utcnow())

    # -- leases ---------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        issue_ids: Sequence[int],
        *,
        after_id: int,
        limit: int,
        lease_seconds: float,
        skip_domains: Sequence[str] = (),
    ) -> list[Claim]:
        async with self.sessionmaker() as session, session.begin():
            rows = await claim_repository.claim_batch(
                session,
                owner=owner,
                issue_ids=issue_ids,
                after_id=after_id,
                limit=limit,
                lease_seconds=lease_seconds,
                now=utcnow(),
                skip_domains=skip_domains,
            )
        claims = []
        for row in rows:
            job = Job(row.id, row.issue_id, row.subscription_id, row.attempts, row.email, row.name)
            if row.subscription_status != _ACTIVE:
                claims.append(Claim(job, f"subscription {row.subscription_status}"))
            elif row.suppressed:
                claims.append(Claim(job, "address suppressed"))
            else:
                claims.append(Claim(job))
        return claims

    async def renew_leases(self, owner: str, lease_seconds: float) -> None:
        async with self.sessionmaker() as session, session.begin():
            await repository.renew_leases(
                session, owner, utcnow() + timedelta(seconds=lease_seconds)
            )

    async def reclaim_expired(self, owner: str) -> int:
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            taken = await repository.reclaim_expired(session, now, except_owner=owner)
            if taken:
                # Rows of a dead worker may belong to an issue cancelled meanwhile.
                await repository.cancel_leftovers(session, now)
        return taken

    # -- outcomes -------------------------------------------------------------------

    async def write_outcomes(
        self, owner: str, results: Sequence[Result], policy_runs: Mapping[int, PolicyRun]
    ) -> dict[int, int]:
        now = utcnow()
        rows = _OutcomeRows(owner, now, results)
        totals: dict[int, int] = {}
        async with self.sessionmaker() as session, session.begin():
            await repository.write_outcomes(session, repository.MARK_SENT, rows.sent)
            await repository.write_outcomes(session, repository.MARK_RETRY, rows.retry)
            await repository.write_outcomes(session, repository.MARK_RELEASE, rows.release)
            await repository.write_outcomes(session, repository.MARK_REQUEUE, rows.requeue)
            if rows.release:
                # Rows handed back because their issue was cancelled end cancelled now.
                await repository.cancel_leftovers(session, now)
            await repository.write_outcomes(session, repository.MARK_FINAL, rows.final)
            await repository.reset_soft_bounces(session, rows.sent_subscriptions)
            for r in results:
                if r.kind is Kind.bounced or (r.kind is Kind.failed and r.soft):
                    await record_bounce(
                        session,
                        email=r.job.email,
                        kind=BounceKind.hard if r.kind is Kind.bounced else BounceKind.soft,
                        detail=r.reply,
                        now=now,
                        issue_id=r.job.issue_id,
                        delivery_id=r.job.id,
                        subscription_id=r.job.subscription_id,
                    )
            for issue_id, run in policy_runs.items():
                totals[issue_id] = await repository.record_policy_refusals(
                    session, issue_id, run.refusals, reset=run.reset, now=now
                )
        return totals


class _OutcomeRows:
    """A batch of results as the bind rows of the repository's outcome statements."""

    def __init__(self, owner: str, now: datetime, results: Sequence[Result]) -> None:
        self.sent: list[dict[str, Any]] = []
        self.retry: list[dict[str, Any]] = []
        self.release: list[dict[str, Any]] = []
        self.requeue: list[dict[str, Any]] = []
        self.final: list[dict[str, Any]] = []
        self.sent_subscriptions: list[int] = []
        for r in results:
            job = r.job
            base = {"b_id": job.id, "b_owner": owner, "b_now": now}
            kind = r.kind
            if kind is Kind.sent:
                base |= {"b_attempts": job.attempts + 1, "b_message_id": r.message_id}
                self.sent.append(base | {"b_reply": r.reply})
                self.sent_subscriptions.append(job.subscription_id)
            elif kind is Kind.retry:
                due = now + timedelta(seconds=r.retry_in)
                base |= {"b_attempts": job.attempts + 1, "b_reply": r.reply}
                self.retry.append(base | {"b_next": due})
            elif kind is Kind.release or kind is Kind.policy:
                base["b_next"] = now + timedelta(seconds=r.retry_in)
                if kind is Kind.policy or r.retry_in > 0:
                    self.requeue.append(base | {"b_reply": r.reply})
                else:
                    self.release.append(base)
            else:
                attempts = job.attempts if kind is Kind.skipped else job.attempts + 1
                base |= {"b_status": _FINAL_STATUS[kind], "b_attempts": attempts}
                self.final.append(base | {"b_message_id": r.message_id, "b_reply": r.reply})
        for rows in (self.sent, self.retry, self.release, self.requeue, self.final):
            rows.sort(key=lambda row: int(row["b_id"]))  # one lock order for every writer


# About a minute of retries (0.1 s doubling to 2 s) before an outbox outcome write gives up.
_RECORD_ATTEMPTS = 35
_OUTBOX = cast(Table, OutboxMessage.__table__)


class SqlOutboxStore:
    """The outbox's `OutboxStore` on PostgreSQL or SQLite."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def claim_due(self, *, limit: int, lease_seconds: float) -> list[OutboxItem]:
        now = utcnow()
        due = (
            select(_OUTBOX.c.id)
            .where(
                or_(
                    and_(
                        _OUTBOX.c.status == OutboxStatus.queued.value,
                        _OUTBOX.c.next_attempt_at <= now,
                    ),
                    and_(
                        _OUTBOX.c.status == OutboxStatus.sending.value,
                        _OUTBOX.c.lease_expires_at < now,
                    ),
                )
            )
            .order_by(_OUTBOX.c.id)
            .limit(limit)
            # Several workers on PostgreSQL: each row goes to one of them (no-op on SQLite).
            .with_for_update(skip_locked=True)
        )
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(due.scalar_subquery()))
                .values(
                    status=OutboxStatus.sending.value,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                )
                .returning(
                    _OUTBOX.c.id,
                    _OUTBOX.c.mail_from,
                    _OUTBOX.c.rcpt_to,
                    _OUTBOX.c.message,
                    _OUTBOX.c.attempts,
                )
            )
            items = [OutboxItem(*row) for row in result.all()]
        items.sort(key=lambda item: item.id)
        return items

    async def record(
        self, items: Sequence[OutboxItem], kind: Kind, reply: str, retry_in: float
    ) -> None:
        # The message may already be with the SMTP server: if writing that down fails
        # because the database is briefly locked or restarting, try again rather than
        # leave the row to be claimed and sent a second time.
        pause = 0.1
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                async with self.sessionmaker() as session, session.begin():
                    for item in items:
                        await session.execute(
                            update(_OUTBOX)
                            .where(_OUTBOX.c.id == item.id)
                            .values(**_outbox_values(item, kind, reply, retry_in))
                        )
                return
            except (OperationalError, InterfaceError, PoolTimeout, OSError):
                if attempt == _RECORD_ATTEMPTS:
                    raise
                logger.warning(
                    "outbox outcome not written (database unavailable), retrying in %.1fs",
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)


def _outbox_values(item: OutboxItem, kind: Kind, reply: str, retry_in: float) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": None, "last_reply": reply[:1000]}
    if kind is Kind.sent:
        return values | {
            "status": OutboxStatus.sent.value,
            "sent_at": now,
            "attempts": item.attempts + 1,
        }
    if kind is Kind.release:
        return values | {
            "status": OutboxStatus.queued.value,
            "next_attempt_at": now + timedelta(seconds=retry_in),
        }
    if kind is Kind.retry:
        return values | {
            "status": OutboxStatus.queued.value,
            "attempts": item.attempts + 1,
            "next_attempt_at": now + timedelta(seconds=retry_in),
        }
    return values | {"status": OutboxStatus.failed.value, "attempts": item.attempts + 1}
