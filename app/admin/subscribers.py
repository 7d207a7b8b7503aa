"""`/admin/newsletters/{slug}/subscribers`: the list (search, status filter, keyset pages),
a subscriber's page, and unsubscribe, delete and erase.

Adding, importing and exporting are in `subscribers_io` (mounted first: its literal
paths come before `/{id}`). Everything goes through the subscribers service, the same
one the REST API calls.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.accounts import service as accounts
from app.admin import subscribers_io
from app.admin.deps import FormAdminDep, FormViewerDep, ViewerDep
from app.admin.web import redirect, render
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import BadRequest
from app.kit.ids import MAX_ID, IdPath
from app.models import Newsletter, SubscriptionStatus
from app.newsletters.deps import NewsletterDep
from app.subscribers import service as subscribers

router = APIRouter(include_in_schema=False)
router.include_router(subscribers_io.router)

KeyQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]
# A part shorter than three characters has no trigram to look up: at a million
# subscribers PostgreSQL then reads the whole table (1.3 s measured for "zz"), so such
# a search is not run.
MIN_SEARCH = 3
STATUSES = [status.value for status in SubscriptionStatus]


def list_url(newsletter: Newsletter, **params: str | int | None) -> str:
    """The list's address with these query parameters (empty ones left out)."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    base = f"/admin/newsletters/{newsletter.slug}/subscribers"
    return f"{base}?{query}" if query else base


def _status(value: str) -> SubscriptionStatus | None:
    if not value:
        return None
    try:
        return SubscriptionStatus(value)
    except ValueError:
        raise BadRequest(
            f"The status must be one of {', '.join(STATUSES)}, or empty for everyone."
        ) from None


@router.get("/admin/newsletters/{slug}/subscribers")
async def subscribers_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    newsletter: NewsletterDep,
    q: Annotated[str, Query(max_length=320)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    after: KeyQuery = None,
    before: KeyQuery = None,
) -> Response:
    chosen = _status(status)
    search = q.strip()
    notice = None
    if 0 < len(search) < MIN_SEARCH:
        notice = f"Type at least {MIN_SEARCH} characters to search; showing everyone."
        search = ""
    page = await subscribers.browse(
        session, newsletter, status=chosen, q=search, after=after, before=before
    )
    counts = await subscribers.status_counts(session, newsletter)
    shown = {"q": search, "status": chosen.value if chosen else ""}
    return render(
        request,
        viewer,
        "admin/subscribers.html",
        {
            "newsletter": newsletter,
            "tab": "subscribers",
            "page": page,
            "counts": counts,
            "statuses": STATUSES,
            "filters": shown,
            "notice": notice,
            "next_url": list_url(newsletter, **shown, after=page.next_after)
            if page.next_after
            else None,
            "prev_url": list_url(newsletter, **shown, before=page.prev_before)
            if page.prev_before
            else None,
        },
    )


def _subscriber_url(newsletter: Newsletter, subscription_id: int) -> str:
    return f"/admin/newsletters/{newsletter.slug}/subscribers/{subscription_id}"


@router.get("/admin/newsletters/{slug}/subscribers/{subscription_id}")
async def subscriber_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    newsletter: NewsletterDep,
    subscription_id: IdPath,
) -> Response:
    subscription, subscriber = await subscribers.get_subscription(
        session, newsletter, subscription_id
    )
    history = await subscribers.history(session, subscription.id)
    return render(
        request,
        viewer,
        "admin/subscriber.html",
        {
            "newsletter": newsletter,
            "tab": "subscribers",
            "subscription": subscription,
            "subscriber": subscriber,
            "history": history,
            "url": _subscriber_url(newsletter, subscription.id),
            "can_unsubscribe": subscription.status
            in (SubscriptionStatus.pending.value, SubscriptionStatus.active.value),
        },
    )


@router.post("/admin/newsletters/{slug}/subscribers/{subscription_id}/unsubscribe")
async def unsubscribe(
    request: Request,
    session: SessionDep,
    viewer: FormViewerDep,
    newsletter: NewsletterDep,
    subscription_id: IdPath,
) -> Response:
    subscription, subscriber = await subscribers.get_subscription(
        session, newsletter, subscription_id
    )
    result = await subscribers.unsubscribe(
        session, subscription.id, detail=f"dashboard, {viewer.actor}"
    )
    url = _subscriber_url(newsletter, subscription.id)
    if result.outcome != subscribers.UnsubscribeOutcome.unsubscribed:
        return redirect(request, url, f"{subscriber.email} was not subscribed.", kind="error")
    await accounts.audit(
        session,
        viewer.actor,
        "subscriber.unsubscribe",
        f"subscription {subscription.id}",
        f"newsletter {newsletter.slug}",
    )
    return redirect(request, url, f"{subscriber.email} is unsubscribed; nothing more is sent.")


@router.post("/admin/newsletters/{slug}/subscribers/{subscription_id}/delete")
async def delete(
    request: Request,
    session: SessionDep,
    viewer: FormViewerDep,
    newsletter: NewsletterDep,
    subscription_id: IdPath,
) -> Response:
    _, subscriber = await subscribers.get_subscription(session, newsletter, subscription_id)
    email = subscriber.email
    await subscribers.delete_subscription(session, newsletter, subscription_id)
    await accounts.audit(
        session,
        viewer.actor,
        "subscriber.delete",
        f"subscription {subscription_id}",
        f"newsletter {newsletter.slug}",
    )
    return redirect(
        request, list_url(newsletter), f"{email}'s subscription to {newsletter.name} is deleted."
    )


@router.post("/admin/newsletters/{slug}/subscribers/{subscription_id}/erase")
async def erase(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: FormAdminDep,
    newsletter: NewsletterDep,
    subscription_id: IdPath,
) -> Response:
    _, subscriber = await subscribers.get_subscription(session, newsletter, subscription_id)
    email = subscriber.email
    await subscribers.erase(session, settings=settings, email=email)
    # The audit row names the subscription, not the address: the person asked to be
    # forgotten (the suppression list keeps the address, and only that).
    await accounts.audit(
        session,
        viewer.actor,
        "subscriber.erase",
        f"subscription {subscription_id}",
        f"newsletter {newsletter.slug}; every newsletter, events and mail; suppressed",
    )
    return redirect(
        request,
        list_url(newsletter),
        f"{email} is erased from every newsletter and will never be mailed again.",
    )
