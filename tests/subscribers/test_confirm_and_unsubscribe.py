"""Confirm links and unsubscribe (page, button, RFC 8058 one-click)."""

from __future__ import annotations

import time

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.kit.links import CONFIRM, UNSUBSCRIBE, confirm_token, unsubscribe_token
from app.kit.tokens import Signer
from app.models import (
    Delivery,
    Event,
    Issue,
    Newsletter,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from app.subscribers.suppression import suppress
from tests.conftest import SECRET
from tests.factories import (
    confirm_link,
    create_subscription,
    outbox_rows,
    subscription_of,
)
from tests.subscribers.conftest import ClientFactory

SIGNER = Signer(SECRET.encode())
ONE_CLICK = b"List-Unsubscribe=One-Click"


async def _subscribe_and_get_link(client: AsyncClient, session: AsyncSession, address: str) -> str:
    response = await client.post("/newsletters/weekly/subscribe", json={"email": address})
    assert response.status_code == 202
    rows = [r for r in await outbox_rows(session) if r.rcpt_to == address]
    return confirm_link(rows[-1].message).removeprefix("http://testserver")


async def test_opening_the_confirm_link_shows_a_confirm_button_and_confirms_nothing(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    link = await _subscribe_and_get_link(client, session, "scanned@example.com")
    for _ in range(3):  # mail scanners and link previews open links, sometimes twice
        response = await client.get(link, headers={"user-agent": "LinkScanner/1.0"})
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
        assert "Confirm your subscription to The Weekly Gazette" in response.text
        assert f'<form class="form" method="post" action="{link}">' in response.text
        assert ">Confirm</button>" in response.text
        assert response.headers["cache-control"] == "no-store"
    subscription = await subscription_of(session, "scanned@example.com")
    assert subscription is not None
    assert subscription.status == "pending"
    assert subscription.confirmed_at is None
    assert subscription.confirmed_ip is None
    assert subscription.confirmed_user_agent is None


async def test_pressing_confirm_activates_and_records_when_and_who_pressed_it(
    client_with: ClientFactory, session: AsyncSession, newsletter: Newsletter
) -> None:
    async with client_with(peer="198.51.100.7") as subscriber_client:
        link = await _subscribe_and_get_link(subscriber_client, session, "c@example.com")
    async with client_with(peer="203.0.113.9") as reader:
        response = await reader.post(
            link,
            data={},
            headers={"user-agent": "Mozilla/5.0 (Reader's phone)"},
        )
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "You&#39;re subscribed" in response.text or "You're subscribed" in response.text
    assert response.headers["cache-control"] == "no-store"
    subscription = await subscription_of(session, "c@example.com")
    assert subscription is not None
    assert subscription.status == "active"
    assert subscription.confirmed_at is not None
    assert subscription.confirmed_ip == "203.0.113.9"
    assert subscription.confirmed_user_agent == "Mozilla/5.0 (Reader's phone)"
    assert subscription.ip == "198.51.100.7"  # the subscribe request's proof stays


async def test_pressing_confirm_twice_changes_nothing_the_second_time(
    client: AsyncClient, client_with: ClientFactory, session: AsyncSession, newsletter: Newsletter
) -> None:
    link = await _subscribe_and_get_link(client, session, "twice@example.com")
    first = await client.post(link, headers={"user-agent": "First browser"})
    assert first.status_code == 200
    confirmed = await subscription_of(session, "twice@example.com")
    assert confirmed is not None
    first_confirmed_at = confirmed.confirmed_at
    async with client_with(peer="192.0.2.44") as other:
        again = await other.post(link, headers={"user-agent": "Second browser"})
    assert again.status_code == 200
    assert "You&#39;re subscribed" in again.text or "You're subscribed" in again.text
    subscription = await subscription_of(session, "twice@example.com")
    assert subscription is not None
    assert subscription.status == "active"
    assert subscription.confirmed_at == first_confirmed_at
    assert subscription.confirmed_ip == "127.0.0.1"
    assert subscription.confirmed_user_agent == "First browser"
    # The page of a confirmed link says so, without a button.
    page = await client.get(link)
    assert page.status_code == 200
    assert "You&#39;re subscribed" in page.text or "You're subscribed" in page.text
    assert "<form" not in page.text


async def test_confirm_answers_json_to_a_json_post(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    link = await _subscribe_and_get_link(client, session, "api@example.com")
    response = await client.post(link, json={})
    assert response.status_code == 200
    assert response.json() == {"status": "active"}
    again = await client.post(link, headers={"accept": "application/json"})
    assert again.status_code == 200
    assert again.json() == {"status": "active"}
    subscription = await subscription_of(session, "api@example.com")
    assert subscription is not None
    assert subscription.status == "active"


async def test_a_bad_confirm_token_posted_as_json_gets_a_json_400(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    response = await client.post("/confirm/garbage", json={})
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid confirmation link"}
    pending = await create_subscription(
        session, newsletter, "old-json@example.com", status=SubscriptionStatus.pending
    )
    old = SIGNER.sign(CONFIRM, pending.id, int(time.time()) - 8 * 86400)
    expired = await client.post(f"/confirm/{old}", json={})
    assert expired.status_code == 400
    assert expired.json() == {"detail": "this confirmation link has expired"}


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        "a.b",
        "x" * 600,
        Signer(b"another-secret-key-0123456789").sign(CONFIRM, 1, int(time.time())),
    ],
)
async def test_bad_or_forged_confirm_tokens_get_a_400_page(
    client: AsyncClient, newsletter: Newsletter, token: str
) -> None:
    for method in ("GET", "POST"):
        response = await client.request(method, f"/confirm/{token}")
        assert response.status_code in (400, 404)  # an empty token is no route at all
        if token:
            assert response.status_code == 400
            assert "text/html" in response.headers["content-type"]
            assert "not valid" in response.text


async def test_a_tampered_confirm_token_does_not_confirm_another_subscription(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    mine = await create_subscription(
        session, newsletter, "me@example.com", status=SubscriptionStatus.pending
    )
    victim = await create_subscription(
        session, newsletter, "victim@example.com", status=SubscriptionStatus.pending
    )
    token = confirm_token(SIGNER, mine.id)
    payload, mac = token.split(".")
    other = SIGNER.sign_timed(CONFIRM, victim.id).split(".")[0]
    response = await client.post(f"/confirm/{other}.{mac}")
    assert response.status_code == 400
    assert payload != other
    row = await subscription_of(session, "victim@example.com")
    assert row is not None
    assert row.status == "pending"


async def test_an_unsubscribe_token_does_not_confirm_and_a_confirm_token_does_not_unsubscribe(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    pending = await create_subscription(
        session, newsletter, "p@example.com", status=SubscriptionStatus.pending
    )
    active = await create_subscription(session, newsletter, "a@example.com")
    assert (
        await client.post(f"/confirm/{unsubscribe_token(SIGNER, pending.id)}")
    ).status_code == 400
    response = await client.post(
        f"/unsubscribe/{confirm_token(SIGNER, active.id)}", content=ONE_CLICK
    )
    assert response.status_code == 400
    assert (await subscription_of(session, "p@example.com")).status == "pending"  # type: ignore[union-attr]
    assert (await subscription_of(session, "a@example.com")).status == "active"  # type: ignore[union-attr]


async def test_an_expired_confirm_token_is_refused(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    pending = await create_subscription(
        session, newsletter, "late@example.com", status=SubscriptionStatus.pending
    )
    eight_days_ago = int(time.time()) - 8 * 86400
    old = SIGNER.sign(CONFIRM, pending.id, eight_days_ago)
    for method in ("GET", "POST"):
        response = await client.request(method, f"/confirm/{old}")
        assert response.status_code == 400
        assert "expired" in response.text
    row = await subscription_of(session, "late@example.com")
    assert row is not None
    assert row.status == "pending"


async def test_confirm_token_max_age_comes_from_the_settings(
    client_with: ClientFactory, session: AsyncSession, newsletter: Newsletter
) -> None:
    pending = await create_subscription(
        session, newsletter, "quick@example.com", status=SubscriptionStatus.pending
    )
    token = SIGNER.sign(CONFIRM, pending.id, int(time.time()) - 120)
    async with client_with(confirm_token_max_age_seconds=60) as strict:
        assert (await strict.post(f"/confirm/{token}")).status_code == 400
    async with client_with(confirm_token_max_age_seconds=3600) as lenient:
        assert (await lenient.post(f"/confirm/{token}")).status_code == 200
    row = await subscription_of(session, "quick@example.com")
    assert row is not None
    assert row.status == "active"


@pytest.mark.parametrize(
    "status",
    [SubscriptionStatus.unsubscribed, SubscriptionStatus.bounced, SubscriptionStatus.complained],
)
async def test_an_old_confirm_link_never_revives_an_ended_subscription(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter, status: SubscriptionStatus
) -> None:
    ended = await create_subscription(session, newsletter, "old@example.com", status=status)
    for method in ("GET", "POST"):
        response = await client.request(method, f"/confirm/{confirm_token(SIGNER, ended.id)}")
        assert response.status_code == 409
        assert "can no longer be used" in response.text
    row = await subscription_of(session, "old@example.com")
    assert row is not None
    assert row.status == status.value


async def test_a_suppressed_address_cannot_be_confirmed(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    link = await _subscribe_and_get_link(client, session, "s@example.com")
    await suppress(session, "s@example.com", SuppressionReason.manual)
    await session.commit()
    response = await client.post(link)
    assert response.status_code == 409
    row = await subscription_of(session, "s@example.com")
    assert row is not None
    assert row.status != "active"


async def test_a_confirm_link_for_a_deleted_subscription_is_refused(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    for method in ("GET", "POST"):
        response = await client.request(method, f"/confirm/{confirm_token(SIGNER, 999_999)}")
        assert response.status_code == 400


async def test_unsubscribe_page_shows_a_button_and_never_unsubscribes(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    subscription = await create_subscription(session, newsletter, "stay@example.com")
    url = f"/unsubscribe/{unsubscribe_token(SIGNER, subscription.id)}"
    for _ in range(3):  # mail scanners follow links, sometimes more than once
        response = await client.get(url)
        assert response.status_code == 200
        assert "The Weekly Gazette" in response.text
        assert f'action="{url}"' in response.text
        assert 'method="post"' in response.text
        assert "<h1>" in response.text
        assert response.text.count("<h1") == 1
    head = await client.head(url)
    assert head.status_code in (200, 405)
    row = await subscription_of(session, "stay@example.com")
    assert row is not None
    assert row.status == "active"
    assert list((await session.execute(select(Event))).scalars()) == []


async def _issue_with_deliveries(
    session: AsyncSession, newsletter: Newsletter, subscription: Subscription
) -> tuple[Issue, Issue]:
    sent_issue = Issue(newsletter_id=newsletter.id, number=1, subject="One", status="sent")
    sending_issue = Issue(newsletter_id=newsletter.id, number=2, subject="Two", status="sending")
    session.add_all([sent_issue, sending_issue])
    await session.flush()
    session.add_all(
        [
            Delivery(
                issue_id=sent_issue.id,
                subscription_id=subscription.id,
                status="sent",
                sent_at=utcnow(),
            ),
            Delivery(issue_id=sending_issue.id, subscription_id=subscription.id, status="queued"),
        ]
    )
    await session.commit()
    return sent_issue, sending_issue


async def test_one_click_post_with_the_rfc_8058_body_unsubscribes_at_once(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    subscription = await create_subscription(session, newsletter, "leave@example.com")
    sent_issue, sending_issue = await _issue_with_deliveries(session, newsletter, subscription)
    url = f"/unsubscribe/{unsubscribe_token(SIGNER, subscription.id)}"
    # Exactly what a mailbox provider sends: no cookie, no Referer, no Accept.
    response = await client.post(
        url,
        content=ONE_CLICK,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "unsubscribed" in response.text
    row = await subscription_of(session, "leave@example.com")
    assert row is not None
    assert row.status == "unsubscribed"
    assert row.unsubscribed_at is not None
    deliveries = (
        await session.execute(
            select(Delivery.issue_id, Delivery.status).execution_options(populate_existing=True)
        )
    ).all()
    assert sorted(deliveries) == sorted([(sent_issue.id, "sent"), (sending_issue.id, "skipped")])
    (event,) = (await session.execute(select(Event))).scalars()
    assert event.kind == "unsubscribe"
    assert event.subscription_id == subscription.id
    assert event.issue_id == sent_issue.id
    assert event.detail == "one-click"

    # Idempotent: again, and again by the page's button, changes nothing more.
    again = await client.post(url, content=ONE_CLICK)
    assert again.status_code == 200
    assert len(list((await session.execute(select(Event))).scalars())) == 1
    later = await subscription_of(session, "leave@example.com")
    assert later is not None
    assert later.unsubscribed_at == row.unsubscribed_at


async def test_unsubscribe_accepts_multipart_json_and_an_empty_body(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    a = await create_subscription(session, newsletter, "m@example.com")
    b = await create_subscription(session, newsletter, "j@example.com")
    c = await create_subscription(session, newsletter, "e@example.com")
    multipart = await client.post(
        f"/unsubscribe/{unsubscribe_token(SIGNER, a.id)}",
        files={"List-Unsubscribe": (None, "One-Click")},
    )
    assert multipart.status_code == 200
    as_json = await client.post(f"/unsubscribe/{unsubscribe_token(SIGNER, b.id)}", json={})
    assert as_json.status_code == 200
    assert as_json.json() == {"status": "unsubscribed"}
    empty = await client.post(
        f"/unsubscribe/{unsubscribe_token(SIGNER, c.id)}", headers={"Accept": "application/json"}
    )
    assert empty.json() == {"status": "unsubscribed"}
    for address in ("m@example.com", "j@example.com", "e@example.com"):
        row = await subscription_of(session, address)
        assert row is not None
        assert row.status == "unsubscribed", address


async def test_the_page_button_unsubscribes_and_shows_a_page(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    subscription = await create_subscription(session, newsletter, "btn@example.com")
    url = f"/unsubscribe/{unsubscribe_token(SIGNER, subscription.id)}"
    page = await client.get(url)
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    response = await client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "You&#39;re unsubscribed" in response.text or "You're unsubscribed" in response.text
    assert "/newsletters/weekly/subscribe" in response.text
    after = await client.get(url)
    assert "unsubscribed" in after.text
    assert "<form" not in after.text


async def test_unsubscribing_a_pending_subscription_stops_its_confirmation_link(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    link = await _subscribe_and_get_link(client, session, "pend@example.com")
    subscription = await subscription_of(session, "pend@example.com")
    assert subscription is not None
    await client.post(
        f"/unsubscribe/{unsubscribe_token(SIGNER, subscription.id)}", content=ONE_CLICK
    )
    response = await client.post(link)
    assert response.status_code == 409
    row = await subscription_of(session, "pend@example.com")
    assert row is not None
    assert row.status == "unsubscribed"


@pytest.mark.parametrize(
    "token",
    ["nonsense", Signer(b"forged-secret-0123456789abcdef").sign(UNSUBSCRIBE, 1), "a" * 600],
)
async def test_bad_unsubscribe_tokens_get_400(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter, token: str
) -> None:
    await create_subscription(session, newsletter, "x@example.com")
    assert (await client.get(f"/unsubscribe/{token}")).status_code == 400
    response = await client.post(f"/unsubscribe/{token}", content=ONE_CLICK)
    assert response.status_code == 400
    as_json = await client.post(f"/unsubscribe/{token}", json={})
    assert as_json.status_code == 400
    assert as_json.json()["detail"]
    row = await subscription_of(session, "x@example.com")
    assert row is not None
    assert row.status == "active"


async def test_unsubscribe_for_an_erased_subscription_still_answers_200(
    client: AsyncClient, newsletter: Newsletter
) -> None:
    token = unsubscribe_token(SIGNER, 424242)
    assert (await client.get(f"/unsubscribe/{token}")).status_code == 200
    assert (await client.post(f"/unsubscribe/{token}", content=ONE_CLICK)).status_code == 200
