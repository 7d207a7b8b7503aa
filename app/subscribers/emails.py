"""The confirmation email, written to the outbox in the caller's transaction.

The row is the mail: if the transaction that creates the subscription commits, the
confirmation is there for the worker to send (and retry); if it rolls back, neither
exists. The HTML comes from `email_templates/confirmation.html` with its CSS inlined by
`app.rendering.inlining` (as every email); the text part from `confirmation.txt`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.links import confirm_url
from app.kit.tokens import Signer
from app.models import Newsletter, OutboxMessage, Subscriber, Subscription
from app.rendering.dkim import dkim_signer
from app.rendering.environment import email_environment
from app.rendering.inlining import inline_css
from app.rendering.placeholders import fill, placeholder
from app.rendering.transactional import build_message, message_id
from app.settings import Settings

CONFIRMATION_KIND = "confirmation"


def confirmation_subject(newsletter: Newsletter) -> str:
    return f"Confirm your subscription to {newsletter.name}"


@lru_cache(maxsize=256)
def _inlined_html(
    templates_dir: Path | None,
    newsletter_name: str,
    from_name: str,
    postal_address: str,
    with_name: bool,
) -> str:
    """The confirmation HTML of one newsletter, CSS inlined once, with placeholders.

    premailer costs milliseconds per document; doing it once per newsletter (and
    whether the reader gave a name) keeps subscribe cheap under load.
    """
    html = (
        email_environment(templates_dir)
        .get_template("confirmation.html")
        .render(
            newsletter_name=newsletter_name,
            from_name=from_name,
            postal_address=postal_address,
            subscriber_name=placeholder("NAME") if with_name else "",
            email=placeholder("EMAIL"),
            confirm_url=placeholder("URL"),
        )
    )
    return inline_css(html)


def render_confirmation(
    settings: Settings, newsletter: Newsletter, subscriber: Subscriber, url: str
) -> tuple[str, str]:
    """The (text, inlined HTML) of the confirmation email."""
    env = email_environment(settings.templates_dir)
    postal_address = newsletter.postal_address.strip()
    context = {
        "newsletter_name": newsletter.name,
        "from_name": newsletter.from_name,
        "postal_address": postal_address,
        "subscriber_name": subscriber.name,
        "email": subscriber.email,
        "confirm_url": url,
    }
    text = env.get_template("confirmation.txt").render(context)
    html = _inlined_html(
        settings.templates_dir,
        newsletter.name,
        newsletter.from_name,
        postal_address,
        bool(subscriber.name),
    )
    return text, fill(html, {"NAME": subscriber.name, "EMAIL": subscriber.email, "URL": url})


async def queue_confirmation(
    session: AsyncSession,
    *,
    settings: Settings,
    signer: Signer,
    newsletter: Newsletter,
    subscription: Subscription,
    subscriber: Subscriber,
    now: datetime,
) -> OutboxMessage:
    """Add the confirmation email for `subscription` to the outbox (flushes, never commits).

    The message is complete before its row is written, so the row is one INSERT. Its
    Message-ID names the subscription and a random part (each confirmation sent is a new
    message); the row keeps the bytes, so every retry of it sends the same Message-ID.
    """
    url = confirm_url(settings.base_url, signer, subscription.id)
    text, html = render_confirmation(settings, newsletter, subscriber, url)
    mid = message_id("confirm", f"{subscription.id}.{secrets.token_hex(6)}", settings.base_host)
    outbox = OutboxMessage(
        kind=CONFIRMATION_KIND,
        mail_from=newsletter.from_email,
        rcpt_to=subscriber.email,
        message_id=mid,
        message=build_message(
            from_name=newsletter.from_name,
            from_email=newsletter.from_email,
            to_email=subscriber.email,
            to_name=subscriber.name,
            subject=confirmation_subject(newsletter),
            text=text,
            html=html,
            message_id=mid,
            reply_to=newsletter.reply_to,
            headers={"Auto-Submitted": "auto-generated"},
            dkim=dkim_signer(settings),
        ),
        subscription_id=subscription.id,
    )
    session.add(outbox)
    if subscription.confirmation_sent_at != now:
        subscription.confirmation_sent_at = now
    await session.flush()
    return outbox
