"""Subscription rules: adding, listing, confirm, unsubscribe, changes, erasure.

The public subscribe flow is in signup, the consent proof in consent.

Services flush and never commit; the caller's transaction (one per request) commits the
subscription and its confirmation email together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.addresses import AddressError, normalise_email
from app.kit.clock import utcnow
from app.kit.errors import Conflict, Invalid, NotFound
from app.kit.tokens import Signer
from app.models import (
    Event,
    EventKind,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from app.settings import Settings
from app.subscribers import browse_repository, consent, repository
from app.subscribers.browse import Browse as Browse
from app.subscribers.browse import History as History
from app.subscribers.browse import browse as browse
from app.subscribers.browse import history as history
from app.subscribers.browse import status_counts as status_counts
from app.subscribers.consent import ConsentProof
from app.subscribers.emails import queue_confirmation
from app.subscribers.exporter import export_download as export_download
from app.subscribers.importer import ImportReport as ImportReport
from app.subscribers.importer import import_csv as import_csv
from app.subscribers.schemas import SubscriberAdd, SubscriptionUpdate
from app.subscribers.suppression import is_suppressed, suppress


def normalise(settings: Settings, value: str, field: str = "email") -> str:
    """The normal form of an address, or Invalid (422) naming the field."""
    try:
        return normalise_email(value, allow_utf8_local=settings.smtputf8)
    except AddressError as exc:
        raise Invalid(field, str(exc)) from None


async def add_by_editor(
    session: AsyncSession,
    *,
    settings: Settings,
    signer: Signer,
    newsletter: Newsletter,
    data: SubscriberAdd,
) -> tuple[Subscription, Subscriber]:
    """Add one person: active at once, or pending with a confirmation email."""
    email = normalise(settings, data.email)
    suppression = await repository.suppression_for(session, email)
    if suppression is not None:
        raise Conflict(
            f"{email} is on the suppression list ({suppression.reason}) and will not be "
            "mailed again"
        )
    now = utcnow()
    subscriber, created = await repository.ensure_subscriber(
        session, email=email, name=data.name, attributes=data.attributes, now=now
    )
    if not created:
        if data.name:
            subscriber.name = data.name
        if data.attributes:
            subscriber.attributes = {**(subscriber.attributes or {}), **data.attributes}
    status = SubscriptionStatus.pending if data.double_opt_in else SubscriptionStatus.active
    proof = ConsentProof(source="api", consent_text=data.consent)
    subscription, inserted = await consent.subscription_for(
        session, newsletter, subscriber, proof, status, now
    )
    if subscription is None or (
        not inserted and subscription.status == SubscriptionStatus.active.value
    ):
        sid = f" (id {subscription.id})" if subscription is not None else ""
        raise Conflict(f"{email} already has an active subscription to this newsletter{sid}")
    if not inserted:
        consent.restart(subscription, proof, status)
    await session.flush()
    if status is SubscriptionStatus.pending:
        await queue_confirmation(
            session,
            settings=settings,
            signer=signer,
            newsletter=newsletter,
            subscription=subscription,
            subscriber=subscriber,
            now=now,
        )
    return subscription, subscriber


class ConfirmOutcome(StrEnum):
    pending = "pending"  # not confirmed yet: the confirm page shows its button
    confirmed = "confirmed"
    already = "already"
    ended = "ended"  # unsubscribed, bounced or complained: an old link never revives it
    suppressed = "suppressed"
    gone = "gone"  # the subscription was deleted


@dataclass(frozen=True, slots=True)
class LinkResult:
    outcome: str
    newsletter: Newsletter | None = None
    email: str | None = None


def _state_of(subscription: Subscription) -> ConfirmOutcome:
    if subscription.status == SubscriptionStatus.pending.value:
        return ConfirmOutcome.pending
    if subscription.status == SubscriptionStatus.active.value:
        return ConfirmOutcome.already
    return ConfirmOutcome.ended


async def _link(
    session: AsyncSession, subscription_id: int
) -> tuple[LinkResult, Subscription | None]:
    """What a confirm link leads to now, and the subscription when one can be confirmed."""
    found = await repository.get_full(session, subscription_id)
    if found is None:
        return LinkResult(ConfirmOutcome.gone), None
    subscription, subscriber, newsletter = found
    if await is_suppressed(session, subscriber.email):
        return LinkResult(ConfirmOutcome.suppressed, newsletter, subscriber.email), None
    return LinkResult(_state_of(subscription), newsletter, subscriber.email), subscription


async def confirm_state(session: AsyncSession, subscription_id: int) -> LinkResult:
    """What the confirm page shows for a link, changing nothing.

    The page a GET answers: mail scanners and link previews open every link in a
    message, so only the POST of its button confirms (SPEC section 3).
    """
    return (await _link(session, subscription_id))[0]


async def confirm(
    session: AsyncSession, subscription_id: int, *, ip: str | None, user_agent: str | None
) -> LinkResult:
    """pending -> active (idempotent), recording the ip and user agent of the client."""
    result, subscription = await _link(session, subscription_id)
    if subscription is None or result.outcome is not ConfirmOutcome.pending:
        return result
    activated = await repository.activate_pending(
        session, subscription.id, now=utcnow(), ip=ip, user_agent=user_agent
    )
    if activated:
        return LinkResult(ConfirmOutcome.confirmed, result.newsletter, result.email)
    # A concurrent confirm or unsubscribe moved it first: answer what it is now.
    await session.refresh(subscription)
    return LinkResult(_state_of(subscription), result.newsletter, result.email)


class UnsubscribeOutcome(StrEnum):
    unsubscribed = "unsubscribed"
    already = "already"
    gone = "gone"


async def _stop_mail(
    session: AsyncSession, subscription_id: int, *, now: datetime, detail: str
) -> None:
    """Skip every queued delivery and record the unsubscribe event."""
    await repository.skip_queued_deliveries(
        session, subscription_id, now=now, reason=f"unsubscribed ({detail})"
    )
    last = await repository.latest_sent_delivery(session, subscription_id)
    await repository.add_event(
        session,
        Event(
            kind=EventKind.unsubscribe.value,
            subscription_id=subscription_id,
            delivery_id=last[0] if last else None,
            issue_id=last[1] if last else None,
            detail=detail,
            created_at=now,
        ),
    )


async def subscription_for_link(
    session: AsyncSession, subscription_id: int
) -> tuple[Subscription, Subscriber, Newsletter] | None:
    return await repository.get_full(session, subscription_id)


async def unsubscribe(session: AsyncSession, subscription_id: int, *, detail: str) -> LinkResult:
    """Unsubscribe at once (idempotent); queued deliveries of it are skipped."""
    found = await repository.get_full(session, subscription_id)
    if found is None:
        return LinkResult(UnsubscribeOutcome.gone)
    subscription, subscriber, newsletter = found
    now = utcnow()
    if await repository.mark_unsubscribed(session, subscription.id, now=now):
        await _stop_mail(session, subscription.id, now=now, detail=detail)
        return LinkResult(UnsubscribeOutcome.unsubscribed, newsletter, subscriber.email)
    return LinkResult(UnsubscribeOutcome.already, newsletter, subscriber.email)


async def list_page(
    session: AsyncSession,
    newsletter: Newsletter,
    *,
    status: SubscriptionStatus | None,
    q: str | None,
    after_id: int,
    limit: int,
) -> list[tuple[Subscription, Subscriber]]:
    """One page of a newsletter's subscriptions by id, `limit + 1` rows (the extra one
    says there is a next page); `q` matches a part of the address or the name."""
    return await browse_repository.page(
        session,
        newsletter_id=newsletter.id,
        status=status.value if status else None,
        q=q.strip() if q else None,
        after_id=after_id,
        before_id=None,
        limit=limit,
    )


async def get_subscription(
    session: AsyncSession, newsletter: Newsletter, subscription_id: int
) -> tuple[Subscription, Subscriber]:
    found = await repository.get_with_subscriber(
        session, subscription_id, newsletter_id=newsletter.id
    )
    if found is None:
        raise NotFound(f"no subscription {subscription_id} in this newsletter")
    return found


async def update_subscription(
    session: AsyncSession, newsletter: Newsletter, subscription_id: int, data: SubscriptionUpdate
) -> tuple[Subscription, Subscriber]:
    subscription, subscriber = await get_subscription(session, newsletter, subscription_id)
    now = utcnow()
    if data.name is not None:
        subscriber.name = data.name
    if data.attributes is not None:
        subscriber.attributes = data.attributes
    if data.status == SubscriptionStatus.unsubscribed.value:
        if subscription.status != SubscriptionStatus.unsubscribed.value:
            subscription.status = SubscriptionStatus.unsubscribed.value
            subscription.unsubscribed_at = now
            await session.flush()
            await _stop_mail(session, subscription.id, now=now, detail="api")
    elif data.status == SubscriptionStatus.active.value:
        if subscription.status != SubscriptionStatus.active.value:
            suppression = await repository.suppression_for(session, subscriber.email)
            if suppression is not None:
                raise Conflict(
                    f"{subscriber.email} is on the suppression list ({suppression.reason}) "
                    "and cannot be made active"
                )
            subscription.status = SubscriptionStatus.active.value
            subscription.unsubscribed_at = None
            subscription.soft_bounces = 0
    subscription.updated_at = now
    await session.flush()
    return subscription, subscriber


async def delete_subscription(
    session: AsyncSession, newsletter: Newsletter, subscription_id: int
) -> None:
    subscription, _ = await get_subscription(session, newsletter, subscription_id)
    await repository.delete_subscription(session, subscription.id)
    session.expunge(subscription)


async def erase(session: AsyncSession, *, settings: Settings, email: str) -> None:
    """GDPR erasure: delete the person everywhere, then suppress the address for good.

    The suppression row keeps the address: it is what guarantees it is never mailed again
    (a re-import or a form post of it is skipped).
    """
    try:
        address = normalise_email(email, allow_utf8_local=True)
    except AddressError:
        address = email.strip()
    # The local part is stored as typed; a person asking to be forgotten may type it in
    # another case, and every spelling of their address goes.
    subscribers = await repository.subscribers_matching(session, address)
    if not subscribers:
        if await repository.suppression_for(session, address) is None:
            raise NotFound("no subscriber with this address")
        return
    addresses = {address}
    for subscriber in subscribers:
        addresses.add(subscriber.email)
        await repository.erase_subscriber_data(session, subscriber)
        session.expunge(subscriber)
    for item in sorted(addresses):
        await suppress(session, item, SuppressionReason.erasure, detail="erasure request")
