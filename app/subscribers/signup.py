"""The public subscribe flow's rules: validation, the honeypot, rate limits, double opt-in.

The page (pages/subscribe.py) reads the request and renders the answer; what to do with
it is decided here, in one call. Every accepted request gets the same answer whoever the
address belongs to (new, pending, active, unsubscribed, suppressed, or a bot's), so the
answer reveals nothing about who is subscribed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.addresses import AddressError, normalise_email
from app.kit.clock import utcnow
from app.kit.text import has_line_break
from app.kit.tokens import Signer
from app.models import Newsletter, SubscriptionStatus
from app.newsletters import service as newsletters
from app.settings import RateLimit, Settings
from app.subscribers import repository
from app.subscribers.consent import ConsentProof, consent_text, restart, subscription_for
from app.subscribers.emails import queue_confirmation
from app.subscribers.suppression import is_suppressed
from app.throttle import service as ratelimit

MAX_NAME = 200
# A pending address that is entered again gets the confirmation again, at most this often.
RESEND_CONFIRMATION_AFTER = timedelta(minutes=10)


class SubscribeOutcome(StrEnum):
    accepted = "accepted"  # also a bot's request and a suppressed address: nothing told
    not_found = "not_found"  # no newsletter with this slug
    too_many = "too_many"  # over a rate limit: wait `retry_after` seconds
    invalid = "invalid"  # `errors` names each field that is wrong


@dataclass(frozen=True, slots=True)
class SubscribeForm:
    """What the page read from a subscribe request.

    `errors` holds what made the body unreadable (by field, or "body"); the fields are
    then not validated further.
    """

    email: str
    name: str
    website: str  # the honeypot: a field people never see
    ip: str
    referer: str | None = None
    user_agent: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    outcome: SubscribeOutcome
    newsletter: Newsletter | None = None
    retry_after: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def form_path(newsletter: Newsletter) -> str:
    """The address of the newsletter's subscribe form (and of its POST)."""
    return f"/newsletters/{newsletter.slug}/subscribe"


def _email_message(value: str, exc: AddressError) -> str:
    if not value.strip():
        return "Enter your email address."
    if "not a valid email address" in str(exc):
        return "Enter a valid email address, like name@example.com."
    return f"This email address {exc}."


def _validate(settings: Settings, form: SubscribeForm) -> tuple[str, dict[str, str]]:
    """(the normalised address, or "" when it is not valid; the errors by field)."""
    errors = dict(form.errors)
    if errors:
        return "", errors
    email = ""
    try:
        email = normalise_email(form.email, allow_utf8_local=settings.smtputf8)
    except AddressError as exc:
        errors["email"] = _email_message(form.email, exc)
    if has_line_break(form.name):
        errors["name"] = "The name must be on one line, without control characters."
    elif len(form.name.strip()) > MAX_NAME:
        errors["name"] = f"The name must be at most {MAX_NAME} characters."
    return email, errors


def _rate_hits(settings: Settings, ip: str, address: str | None) -> list[tuple[str, RateLimit]]:
    """Every attempt counts against the client's limit, valid or not, so the form cannot
    be used to probe addresses or to flood mailboxes; a valid address also counts against
    its own limit, keyed on the lower-cased address (most mailboxes ignore case before the
    @, so case variants must not each get their own allowance)."""
    hits = [(ratelimit.counter_key("subscribe-ip", ip, settings.secret), settings.subscribe_rate)]
    if address:
        key = ratelimit.counter_key("subscribe-address", address.lower(), settings.secret)
        hits.append((key, settings.subscribe_address_rate))
    return hits


def _proof(newsletter: Newsletter, form: SubscribeForm, settings: Settings) -> ConsentProof:
    page = form.referer or f"{settings.base_url}{form_path(newsletter)}"
    return ConsentProof(
        source="form",
        consent_text=consent_text(newsletter),
        page=page[:2000],
        ip=form.ip,
        user_agent=(form.user_agent or "")[:1000] or None,
    )


async def subscribe(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    settings: Settings,
    signer: Signer,
    slug: str,
    form: SubscribeForm,
) -> SubscribeResult:
    """A reader's subscribe request, from the form or as JSON: what to answer.

    The rate limits are counted in a transaction of their own before `session` runs a
    query (see ratelimit.hit_alone); then the request's one transaction reads the
    newsletter and, for a valid request, subscribes the address.
    """
    is_bot = bool(form.website.strip())  # answered as if it worked, and nothing kept
    email, errors = _validate(settings, form)
    counted = email if not errors and not is_bot else None
    retry = await ratelimit.hit_alone(sessionmaker, _rate_hits(settings, form.ip, counted))
    newsletter = await newsletters.find(session, slug)
    if newsletter is None:
        return SubscribeResult(SubscribeOutcome.not_found)
    if retry is not None:
        return SubscribeResult(SubscribeOutcome.too_many, newsletter, retry_after=retry)
    if is_bot:
        return SubscribeResult(SubscribeOutcome.accepted, newsletter)
    if errors:
        return SubscribeResult(SubscribeOutcome.invalid, newsletter, errors=errors)
    await _subscribe_address(
        session,
        settings=settings,
        signer=signer,
        newsletter=newsletter,
        email=email,
        name=form.name.strip(),
        proof=_proof(newsletter, form, settings),
    )
    return SubscribeResult(SubscribeOutcome.accepted, newsletter)


async def _subscribe_address(
    session: AsyncSession,
    *,
    settings: Settings,
    signer: Signer,
    newsletter: Newsletter,
    email: str,
    name: str,
    proof: ConsentProof,
) -> None:
    """Subscribe a valid address. Returns nothing on purpose.

    Whatever the address's history (new, pending, active, unsubscribed, suppressed) the
    caller answers the same, so the answer reveals nothing about who is subscribed.
    """
    if await is_suppressed(session, email):
        return
    now = utcnow()
    subscriber, _ = await repository.ensure_subscriber(
        session, email=email, name=name, attributes={}, now=now
    )
    target = SubscriptionStatus.pending if newsletter.double_opt_in else SubscriptionStatus.active
    subscription, inserted = await subscription_for(
        session, newsletter, subscriber, proof, target, now
    )
    if subscription is None:
        return
    send_confirmation = False
    status = SubscriptionStatus(subscription.status)
    if inserted:
        send_confirmation = target is SubscriptionStatus.pending
    elif status is SubscriptionStatus.pending:
        if target is SubscriptionStatus.active:
            restart(subscription, proof, target)
        else:
            last = subscription.confirmation_sent_at
            send_confirmation = last is None or now - last >= RESEND_CONFIRMATION_AFTER
    elif status in (SubscriptionStatus.unsubscribed, SubscriptionStatus.bounced):
        restart(subscription, proof, target)
        send_confirmation = target is SubscriptionStatus.pending
    # active: nothing to do. complained: the reader reported us as spam; a form post
    # (which anyone can make) does not override that.
    await session.flush()
    if send_confirmation:
        await queue_confirmation(
            session,
            settings=settings,
            signer=signer,
            newsletter=newsletter,
            subscription=subscription,
            subscriber=subscriber,
            now=now,
        )
