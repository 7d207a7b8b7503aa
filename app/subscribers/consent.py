"""Consent records: how and where someone agreed, stored on their subscription.

Every way in (the public form, the API, a restart of an old subscription) writes the same
proof fields, so a subscription always says who asked for it, where and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from app.subscribers import repository


@dataclass(frozen=True, slots=True)
class ConsentProof:
    """How and where consent was given, stored on the subscription."""

    source: str  # form | api | import
    consent_text: str
    page: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def consent_text(newsletter: Newsletter) -> str:
    """The consent statement shown next to the button, stored as given consent."""
    return (
        f"By subscribing you agree to receive {newsletter.name} by email from "
        f"{newsletter.from_name}. You can unsubscribe at any time with the link in every email."
    )


def proof_values(proof: ConsentProof, status: SubscriptionStatus, now: datetime) -> dict[str, Any]:
    return {
        "status": status.value,
        "source": proof.source,
        "consent_text": proof.consent_text,
        "page": proof.page,
        "ip": proof.ip,
        "user_agent": proof.user_agent,
        "requested_at": now,
        "confirmation_sent_at": None,
        "confirmed_at": None,
        "confirmed_ip": None,
        "confirmed_user_agent": None,
        "unsubscribed_at": None,
        "soft_bounces": 0,
    }


async def subscription_for(
    session: AsyncSession,
    newsletter: Newsletter,
    subscriber: Subscriber,
    proof: ConsentProof,
    status: SubscriptionStatus,
    now: datetime,
) -> tuple[Subscription | None, bool]:
    """(the subscription row, whether this call created it); None if a racing call won.

    A new row is inserted in one statement; an existing one is read and locked, so two
    requests for one address change it one after the other. A new pending row gets its
    confirmation in the same transaction (queue_confirmation), so it is written with the
    time it was sent rather than updated for it.
    """
    values = {
        "newsletter_id": newsletter.id,
        "subscriber_id": subscriber.id,
        "created_at": now,
        "updated_at": now,
        **proof_values(proof, status, now),
    }
    if status is SubscriptionStatus.pending:
        values["confirmation_sent_at"] = now
    inserted = await repository.insert_subscription(session, values)
    if inserted is not None:
        return inserted, True
    existing = await repository.get_subscription(
        session, newsletter.id, subscriber.id, for_update=True
    )
    return existing, False


def restart(subscription: Subscription, proof: ConsentProof, status: SubscriptionStatus) -> None:
    """A new consent for an old subscription: its proof is replaced by the new one."""
    now = utcnow()
    for key, value in proof_values(proof, status, now).items():
        setattr(subscription, key, value)
    subscription.updated_at = now
