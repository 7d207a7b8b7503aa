"""Starting and controlling a send: the rules. Services flush; the caller commits.

State changes of an issue are conditional UPDATEs (`... WHERE status IN (allowed)`), so
two requests racing (an editor and cron, or a retried request) cannot both win: the
row lock makes the second wait and then find the new state, and it gets a 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import send_repository
from app.delivery.outbox import enqueue_mail
from app.issues import lifecycle
from app.issues import service as issues_service
from app.issues.lifecycle import Action
from app.kit.clock import utcnow
from app.kit.errors import Conflict, Invalid, NotFound
from app.kit.tokens import Signer
from app.models import DeliveryStatus, EventKind, Issue, IssueStatus, Newsletter
from app.rendering.dkim import dkim_signer
from app.rendering.transactional import build_message, message_id
from app.settings import Settings

# Sends at least this large refresh the delivery table's statistics (PostgreSQL).
ANALYZE_AFTER = 5000


async def notify_workers(session: AsyncSession) -> None:
    """Wake every listening worker (PostgreSQL); delivered when the transaction commits."""
    await send_repository.notify_workers(session)


async def start_send(session: AsyncSession, issue: Issue, *, settings: Settings) -> int:
    """Freeze the rendered issue, enqueue one delivery per active subscription, set the
    issue `sending`; the number of recipients. Raises Conflict when the issue cannot be
    sent from its current state. The caller's transaction commits it."""
    from app.rendering.prepared import freeze_issue

    now = utcnow()
    await lifecycle.move_or_conflict(
        session,
        issue,
        Action.send,
        started_at=now,
        finished_at=None,
        pause_reason=None,
        policy_refusals=0,
        updated_at=now,
    )
    newsletter = await session.get(Newsletter, issue.newsletter_id)
    if newsletter is None:  # pragma: no cover - the foreign key guarantees it
        raise NotFound("no such newsletter")
    stories = await send_repository.stories_of(session, issue.id)
    # Rendering (premailer above all) takes a few hundred milliseconds of CPU: off the
    # event loop, so the API keeps answering meanwhile. It touches no database.
    await to_thread.run_sync(freeze_issue, issue, newsletter, stories, settings)
    await session.flush()
    recipients = await send_repository.enqueue_deliveries(session, issue.id, issue.newsletter_id)
    issue.recipients = recipients
    if recipients >= ANALYZE_AFTER:
        # The claim query's plan depends on how many rows are queued; with statistics
        # from before this send (autovacuum off, or not yet run) PostgreSQL scans every
        # queued row per batch. ANALYZE counts this transaction's own new rows.
        await send_repository.analyze_deliveries(session)
    if recipients == 0:
        await lifecycle.move_or_conflict(
            session, issue, Action.finish, finished_at=now, sent_at=now, updated_at=now
        )
    await session.flush()
    await notify_workers(session)
    return recipients


async def recipient_count(session: AsyncSession, newsletter_id: int) -> int:
    """How many subscribers a send started now would go to (active, not suppressed)."""
    return await send_repository.count_recipients(session, newsletter_id)


async def pause(
    session: AsyncSession, issue: Issue, *, reason: str = "paused by an editor"
) -> None:
    await lifecycle.move_or_conflict(
        session,
        issue,
        Action.pause,
        pause_reason=reason,
        updated_at=utcnow(),
    )


async def resume(session: AsyncSession, issue: Issue) -> None:
    await lifecycle.move_or_conflict(
        session,
        issue,
        Action.resume,
        pause_reason=None,
        policy_refusals=0,
        updated_at=utcnow(),
    )
    await notify_workers(session)


async def cancel(session: AsyncSession, issue: Issue) -> int:
    """Cancel the issue; queued deliveries end `cancelled` (the number returned).

    Rows a worker holds at this moment are released by it before the next batch and
    then swept to `cancelled` as well.
    """
    now = utcnow()
    await lifecycle.move_or_conflict(
        session,
        issue,
        Action.cancel,
        finished_at=now,
        updated_at=now,
    )
    return await send_repository.cancel_queued(session, issue.id, now)


async def resend_failed(session: AsyncSession, issue: Issue) -> int:
    """Failed deliveries get a new run of attempts; the issue goes back to sending."""
    now = utcnow()
    status = await issues_service.current_status(session, issue.id)
    if status not in (IssueStatus.sent.value, IssueStatus.sending.value, IssueStatus.paused.value):
        raise Conflict(f"cannot resend to failed deliveries of an issue that is {status}")
    requeued = await send_repository.requeue_failed(session, issue.id, now)
    if requeued and status == IssueStatus.sent.value:
        await lifecycle.move_or_conflict(
            session,
            issue,
            Action.resend,
            finished_at=None,
            updated_at=now,
        )
    await notify_workers(session)
    return requeued


async def stats(session: AsyncSession, issue: Issue) -> dict[str, Any]:
    counts = await send_repository.counts_by_status(session, issue.id)
    events = await send_repository.event_counts(session, issue.id)
    fresh = await send_repository.issue_progress(session, issue.id)
    body: dict[str, Any] = {
        "status": fresh.status,
        "recipients": fresh.recipients,
    }
    for state in DeliveryStatus:
        body[state.value] = counts.get(state.value, 0)
    opens = events.get(EventKind.open.value, (0, 0))
    clicks = events.get(EventKind.click.value, (0, 0))
    body |= {
        "opens": opens[0],
        "unique_opens": opens[1],
        "clicks": clicks[0],
        "unique_clicks": clicks[1],
        "unsubscribes": events.get(EventKind.unsubscribe.value, (0, 0))[0],
        "bounces": events.get(EventKind.bounce.value, (0, 0))[0],
        "complaints": events.get(EventKind.complaint.value, (0, 0))[0],
        "started_at": fresh.started_at,
        "finished_at": fresh.finished_at,
        "pause_reason": fresh.pause_reason,
    }
    return body


def check_delivery_status(status: str | None) -> None:
    """A `status` filter of the deliveries list must name a delivery state (else 422)."""
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        raise Invalid(
            "status",
            f"must be one of {', '.join(s.value for s in DeliveryStatus)}",
            where="query",
        )


async def list_deliveries(
    session: AsyncSession, issue_id: int, *, status: str | None, after_id: int, limit: int
) -> list[Any]:
    """Per-recipient outcomes of an issue by id after `after_id` (keyset pages), `limit + 1`
    rows (the extra one says there is more): id, email, status, attempts, last_reply,
    message_id, sent_at. The API's list and the dashboard's report read it."""
    check_delivery_status(status)
    return await send_repository.list_deliveries(
        session, issue_id, status=status, after_id=after_id, limit=limit
    )


# -- Idempotency-Key ------------------------------------------------------------------------


TEST_KIND = "test"  # the outbox kind of a test send


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False  # the first request's answer, given again: nothing was done


async def send_once(
    session: AsyncSession, issue: Issue, *, settings: Settings, key: str | None
) -> Answer:
    """`start_send` behind an `Idempotency-Key`: a retried request (same key) gets the
    first request's answer, also when it raced the first one and lost."""
    scope = f"send:{issue.id}"
    if key:
        record = await send_repository.find_idempotent(session, scope, key)
        if record is not None:
            return Answer(record.status_code, record.body, replayed=True)
    try:
        recipients = await start_send(session, issue, settings=settings)
    except Conflict:
        if key:
            # The same request raced us and won: its answer is ours.
            record = await send_repository.find_idempotent(session, scope, key)
            if record is not None:
                return Answer(record.status_code, record.body, replayed=True)
        raise
    body = {"status": IssueStatus.sending.value, "recipients": recipients}
    if key:
        await send_repository.remember_idempotent(session, scope, key, 202, body)
    return Answer(202, body)


async def queue_test_send(
    session: AsyncSession,
    issue: Issue,
    addresses: Sequence[str],
    settings: Settings,
    signer: Signer,
) -> int:
    """Personalised copies for the given addresses into the outbox (kind "test").

    No delivery rows, so nothing is counted in the issue's stats. An address that is
    subscribed gets its own name and a working unsubscribe link; any other gets none.
    """
    loaded = await issues_service.load(session, issue.id)
    prepared = await issues_service.prepare_test(loaded, settings, signer)
    queued = 0
    for address in dict.fromkeys(addresses):
        recipient = await issues_service.test_recipient(session, loaded, address)
        message_id = f"<test.{uuid.uuid4().hex}.i{issue.id}@{settings.base_host}>"
        await enqueue_mail(
            session,
            kind=TEST_KIND,
            mail_from=loaded.newsletter.from_email,
            rcpt_to=address,
            message=prepared.personalise(recipient, message_id=message_id),
            message_id=message_id,
            subscription_id=recipient.subscription_id or None,
        )
        queued += 1
    return queued


async def queue_system_mail(
    session: AsyncSession,
    settings: Settings,
    *,
    to_email: str,
    subject: str,
    text: str,
    html: str,
    kind: str,
) -> str:
    """One message from Broadsheet itself (a password reset) into the outbox; its Message-ID.

    From SYSTEM_FROM, signed like every other message, written in the caller's
    transaction: the mail exists exactly when what caused it commits.
    """
    mid = message_id(kind, uuid.uuid4().hex, settings.base_host)
    await enqueue_mail(
        session,
        kind=kind,
        mail_from=settings.system_sender,
        rcpt_to=to_email,
        message=build_message(
            from_name="Broadsheet",
            from_email=settings.system_sender,
            to_email=to_email,
            to_name="",
            subject=subject,
            text=text,
            html=html,
            message_id=mid,
            headers={"Auto-Submitted": "auto-generated"},
            dkim=dkim_signer(settings),
        ),
        message_id=mid,
    )
    return mid
