"""Editor API: list, add, read, change and remove subscriptions; GDPR erasure."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import (
    Delivery,
    Event,
    Issue,
    Newsletter,
    OutboxMessage,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from app.subscribers.suppression import suppress
from tests.factories import (
    LINE_BREAKS,
    confirm_link,
    count,
    create_subscription,
    outbox_rows,
    subscription_of,
)
from tests.factories import (
    create_gazette as create_newsletter,
)

BASE = "/api/v1/newsletters/weekly/subscribers"


def add_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": "ann@example.com",
        "name": "Ann",
        "attributes": {"plan": "pro"},
        "consent": "signed up at the Berlin meetup, paper form #12",
    }
    body.update(overrides)
    return body


async def test_editor_adds_a_subscriber_who_is_active_at_once(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    response = await client.post(BASE, json=add_body(), headers=editor_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ann@example.com"
    assert body["name"] == "Ann"
    assert body["status"] == "active"
    assert body["source"] == "api"
    assert body["attributes"] == {"plan": "pro"}
    assert body["consent_text"] == "signed up at the Berlin meetup, paper form #12"
    assert body["created_at"]
    assert await outbox_rows(session) == []
    read = await client.get(f"{BASE}/{body['id']}", headers=editor_headers)
    assert read.status_code == 200
    assert read.json() == body


async def test_editor_may_ask_for_double_opt_in(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    response = await client.post(BASE, json=add_body(double_opt_in=True), headers=editor_headers)
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    (row,) = await outbox_rows(session)
    assert row.rcpt_to == "ann@example.com"
    link = confirm_link(row.message).removeprefix("http://testserver")
    assert (await client.post(link)).status_code == 200
    confirmed = await client.get(f"{BASE}/{response.json()['id']}", headers=editor_headers)
    assert confirmed.json()["status"] == "active"
    assert confirmed.json()["confirmed_at"]


async def test_consent_is_required(
    client: AsyncClient, editor_headers: dict[str, str], newsletter: Newsletter
) -> None:
    body = add_body()
    del body["consent"]
    response = await client.post(BASE, json=body, headers=editor_headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "consent"]
    empty = await client.post(BASE, json=add_body(consent=""), headers=editor_headers)
    assert empty.status_code == 422


async def test_a_suppressed_address_cannot_be_added(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    await suppress(session, "ann@example.com", SuppressionReason.complaint)
    await session.commit()
    response = await client.post(BASE, json=add_body(), headers=editor_headers)
    assert response.status_code == 409
    assert "suppression list" in response.json()["detail"]
    assert await count(session, Subscription) == 0


async def test_an_active_subscription_cannot_be_added_twice_but_a_lapsed_one_restarts(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    first = await client.post(BASE, json=add_body(), headers=editor_headers)
    assert first.status_code == 201
    again = await client.post(
        BASE, json=add_body(email=" ann@EXAMPLE.com "), headers=editor_headers
    )
    assert again.status_code == 409
    assert "already" in again.json()["detail"]
    await client.patch(
        f"{BASE}/{first.json()['id']}", json={"status": "unsubscribed"}, headers=editor_headers
    )
    restarted = await client.post(
        BASE, json=add_body(consent="asked again by phone"), headers=editor_headers
    )
    assert restarted.status_code == 201
    assert restarted.json()["id"] == first.json()["id"]
    assert restarted.json()["status"] == "active"
    assert restarted.json()["consent_text"] == "asked again by phone"
    assert restarted.json()["unsubscribed_at"] is None


async def test_one_person_may_subscribe_to_two_newsletters(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    await create_newsletter(session, slug="daily", name="The Daily")
    a = await client.post(BASE, json=add_body(), headers=editor_headers)
    b = await client.post(
        "/api/v1/newsletters/daily/subscribers", json=add_body(), headers=editor_headers
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["subscriber_id"] == b.json()["subscriber_id"]
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize("char", LINE_BREAKS)
@pytest.mark.parametrize("field", ["email", "name", "consent"])
async def test_line_breaks_are_refused_with_422(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
    field: str,
    char: str,
) -> None:
    value = f"ann{char}Bcc: x@example.com" if field == "email" else f"Ann{char}Bcc: x"
    response = await client.post(BASE, json=add_body(**{field: value}), headers=editor_headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert await count(session, Subscriber) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"email": "zoë@example.com"}, "email"),  # needs SMTPUTF8, which is off
        ({"attributes": {"": 1}}, "attributes"),
        ({"attributes": {"big": "x" * 20000}}, "attributes"),
        ({"attributes": "not an object"}, "attributes"),
        ({"status": "active"}, "status"),
    ],
)
async def test_invalid_input_is_422_naming_the_field(
    client: AsyncClient,
    editor_headers: dict[str, str],
    newsletter: Newsletter,
    overrides: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(BASE, json=add_body(**overrides), headers=editor_headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


async def test_list_filters_by_status_and_searches_email_and_name(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    await create_subscription(session, newsletter, "alice@example.com", name="Alice Liddell")
    await create_subscription(
        session, newsletter, "bob@example.org", status=SubscriptionStatus.pending
    )
    await create_subscription(session, newsletter, "carol@example.net", name="Carol 100%_Sure")
    other = await create_newsletter(session, slug="other")
    await create_subscription(session, other, "dave@example.com")

    async def emails(**params: str) -> list[str]:
        response = await client.get(BASE, params=params, headers=editor_headers)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert all({"id", "email", "name", "status", "created_at"} <= set(i) for i in items)
        return [item["email"] for item in items]

    assert await emails() == ["alice@example.com", "bob@example.org", "carol@example.net"]
    assert await emails(status="pending") == ["bob@example.org"]
    assert await emails(status="active") == ["alice@example.com", "carol@example.net"]
    assert await emails(q="EXAMPLE.COM") == ["alice@example.com"]
    assert await emails(q="liddell") == ["alice@example.com"]
    assert await emails(q="100%_") == ["carol@example.net"]
    assert await emails(q="%") == ["carol@example.net"]  # wildcards are literal
    assert await emails(q="nobody") == []
    bad = await client.get(BASE, params={"status": "sleeping"}, headers=editor_headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "status"]


async def test_list_is_cursor_paginated(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    for i in range(7):
        await create_subscription(session, newsletter, f"p{i}@example.com")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(BASE, params=params, headers=editor_headers)).json()
        seen += [item["email"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"p{i}@example.com" for i in range(7)]
    bad = await client.get(BASE, params={"cursor": "!!"}, headers=editor_headers)
    assert bad.status_code == 422


async def test_patch_changes_name_attributes_and_status(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    subscription = await create_subscription(
        session, newsletter, "pat@example.com", name="Pat", attributes={"a": 1}
    )
    issue = Issue(newsletter_id=newsletter.id, number=1, subject="S", status="sending")
    session.add(issue)
    await session.flush()
    session.add(Delivery(issue_id=issue.id, subscription_id=subscription.id, status="queued"))
    await session.commit()
    url = f"{BASE}/{subscription.id}"
    renamed = await client.patch(
        url, json={"name": "Patricia", "attributes": {"b": 2}}, headers=editor_headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Patricia"
    assert renamed.json()["attributes"] == {"b": 2}
    left = await client.patch(url, json={"status": "unsubscribed"}, headers=editor_headers)
    assert left.json()["status"] == "unsubscribed"
    assert left.json()["unsubscribed_at"]
    status = (
        await session.execute(select(Delivery.status).execution_options(populate_existing=True))
    ).scalar_one()
    assert status == "skipped"
    back = await client.patch(url, json={"status": "active"}, headers=editor_headers)
    assert back.json()["status"] == "active"
    assert back.json()["unsubscribed_at"] is None
    for bad in ({"status": "bounced"}, {"name": "a\nb"}, {"email": "x@example.com"}):
        response = await client.patch(url, json=bad, headers=editor_headers)
        assert response.status_code == 422, bad


async def test_patch_to_active_is_refused_for_a_suppressed_address(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    subscription = await create_subscription(session, newsletter, "hard@example.com")
    await suppress(session, "hard@example.com", SuppressionReason.hard_bounce)
    await session.commit()
    response = await client.patch(
        f"{BASE}/{subscription.id}", json={"status": "active"}, headers=editor_headers
    )
    assert response.status_code == 409
    row = await subscription_of(session, "hard@example.com")
    assert row is not None
    assert row.status == "bounced"


async def test_delete_removes_the_subscription_and_its_deliveries(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    subscription = await create_subscription(session, newsletter, "del@example.com")
    issue = Issue(newsletter_id=newsletter.id, number=1, subject="S", status="sent")
    session.add(issue)
    await session.flush()
    session.add(Delivery(issue_id=issue.id, subscription_id=subscription.id, status="sent"))
    await session.commit()
    response = await client.delete(f"{BASE}/{subscription.id}", headers=editor_headers)
    assert response.status_code == 204
    assert await count(session, Subscription) == 0
    assert await count(session, Delivery) == 0
    assert (
        await client.get(f"{BASE}/{subscription.id}", headers=editor_headers)
    ).status_code == 404
    assert (
        await client.delete(f"{BASE}/{subscription.id}", headers=editor_headers)
    ).status_code == 404


async def test_a_subscription_of_another_newsletter_is_404(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    other = await create_newsletter(session, slug="other")
    theirs = await create_subscription(session, other, "t@example.com")
    url = f"{BASE}/{theirs.id}"
    assert (await client.get(url, headers=editor_headers)).status_code == 404
    assert (await client.patch(url, json={"name": "x"}, headers=editor_headers)).status_code == 404
    assert (await client.delete(url, headers=editor_headers)).status_code == 404
    missing = "/api/v1/newsletters/nope/subscribers"
    assert (await client.get(missing, headers=editor_headers)).status_code == 404
    assert (await client.post(missing, json=add_body(), headers=editor_headers)).status_code == 404


async def test_subscriber_endpoints_need_a_key(client: AsyncClient, newsletter: Newsletter) -> None:
    bad = {"Authorization": "Bearer nope"}
    for method, url in [
        ("GET", BASE),
        ("POST", BASE),
        ("GET", f"{BASE}/1"),
        ("PATCH", f"{BASE}/1"),
        ("DELETE", f"{BASE}/1"),
        ("POST", f"{BASE}/import"),
        ("GET", f"{BASE}/export"),
        ("DELETE", "/api/v1/subscribers/a@example.com"),
    ]:
        for headers in ({}, bad):
            response = await client.request(method, url, headers=headers, json={})
            assert response.status_code == 401, (method, url)


# --- Erasure -------------------------------------------------------------------------


async def test_erasure_removes_the_person_everywhere_and_suppresses_the_address(
    client: AsyncClient,
    admin_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    daily = await create_newsletter(session, slug="daily", name="The Daily")
    a = await create_subscription(session, newsletter, "erase@example.com", name="Eve")
    b_sub = Subscription(
        newsletter_id=daily.id, subscriber_id=a.subscriber_id, status="active", source="api"
    )
    keep = await create_subscription(session, newsletter, "keep@example.com")
    session.add(b_sub)
    issue = Issue(newsletter_id=newsletter.id, number=1, subject="S", status="sent")
    session.add(issue)
    await session.flush()
    delivery = Delivery(issue_id=issue.id, subscription_id=a.id, status="sent", sent_at=utcnow())
    kept_delivery = Delivery(issue_id=issue.id, subscription_id=keep.id, status="sent")
    session.add_all([delivery, kept_delivery])
    await session.flush()
    session.add_all(
        [
            Event(kind="open", issue_id=issue.id, delivery_id=delivery.id),
            Event(
                kind="click", issue_id=issue.id, delivery_id=delivery.id, url="https://x.example"
            ),
            Event(kind="unsubscribe", subscription_id=b_sub.id, detail="link"),
            Event(kind="open", issue_id=issue.id, delivery_id=kept_delivery.id),
            OutboxMessage(
                kind="test",
                mail_from="news@example.com",
                rcpt_to="erase@example.com",
                message=b"x",
                message_id="<t@x>",
            ),
        ]
    )
    await session.commit()

    response = await client.delete("/api/v1/subscribers/Erase@EXAMPLE.com ", headers=admin_headers)
    assert response.status_code == 204
    emails = list((await session.execute(select(Subscriber.email))).scalars())
    assert emails == ["keep@example.com"]
    assert await count(session, Subscription) == 1
    assert list((await session.execute(select(Delivery.id))).scalars()) == [kept_delivery.id]
    assert [e.delivery_id for e in (await session.execute(select(Event))).scalars()] == [
        kept_delivery.id
    ]
    assert await count(session, OutboxMessage) == 0
    suppressed = {
        (s.email, s.reason) for s in (await session.execute(select(Suppression))).scalars()
    }
    # The stored spelling and the one asked for: neither is mailed again.
    assert suppressed == {("erase@example.com", "erasure"), ("Erase@example.com", "erasure")}

    # Idempotent, and the address can never come back.
    assert (
        await client.delete("/api/v1/subscribers/erase@example.com", headers=admin_headers)
    ).status_code == 204
    form = await client.post("/newsletters/weekly/subscribe", json={"email": "erase@example.com"})
    assert form.status_code == 202
    assert await subscription_of(session, "erase@example.com") is None
    editor_add = await client.post(
        BASE, json=add_body(email="erase@example.com"), headers=admin_headers
    )
    assert editor_add.status_code == 409


async def test_erasure_of_an_unknown_address_is_404(
    client: AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.delete("/api/v1/subscribers/nobody@example.com", headers=admin_headers)
    assert response.status_code == 404


async def test_editors_may_not_erase(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    await create_subscription(session, newsletter, "e@example.com")
    response = await client.delete("/api/v1/subscribers/e@example.com", headers=editor_headers)
    assert response.status_code == 403
    assert await count(session, Subscriber) == 1
