"""The public subscribe form and endpoint: double opt-in, no enumeration, honeypot, limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.models import Newsletter, Subscriber, Subscription, SubscriptionStatus, SuppressionReason
from app.subscribers.suppression import suppress
from tests.factories import (
    LINE_BREAKS,
    count,
    create_subscription,
    outbox_rows,
    subscription_of,
)
from tests.factories import (
    create_gazette as create_newsletter,
)
from tests.subscribers.conftest import ClientFactory


async def test_subscribe_page_shows_the_form_name_description_and_consent(
    client: AsyncClient, newsletter: Newsletter
) -> None:
    response = await client.get("/newsletters/weekly/subscribe")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="en">' in page
    assert page.count("<h1") == 1
    assert "The Weekly Gazette" in page
    assert "Five stories worth your time" in page
    assert '<label for="email">' in page
    assert 'id="email"' in page
    assert '<label for="name">' in page
    assert 'name="website"' in page
    assert 'tabindex="-1"' in page
    assert 'autocomplete="off"' in page
    assert "By subscribing you agree to receive The Weekly Gazette" in page
    assert 'method="post"' in page
    assert "<script" not in page


async def test_unknown_newsletter_is_404_for_page_form_and_json(client: AsyncClient) -> None:
    page = await client.get("/newsletters/nope/subscribe")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    form = await client.post("/newsletters/nope/subscribe", data={"email": "a@example.com"})
    assert form.status_code == 404
    as_json = await client.post("/newsletters/nope/subscribe", json={"email": "a@example.com"})
    assert as_json.status_code == 404
    assert as_json.json()["detail"]


async def test_json_subscribe_is_pending_with_a_confirmation_in_the_outbox(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    response = await client.post(
        "/newsletters/weekly/subscribe",
        json={"email": "Reader@Example.COM", "name": "Rita Reader"},
        headers={"User-Agent": "TestBrowser/1.0", "Referer": "https://blog.example/join"},
    )
    assert response.status_code == 202
    assert response.json() == {"status": "pending"}
    subscription = await subscription_of(session, "Reader@example.com")
    assert subscription is not None
    assert subscription.status == "pending"
    assert subscription.source == "form"
    assert subscription.ip == "127.0.0.1"
    assert subscription.user_agent == "TestBrowser/1.0"
    assert subscription.page == "https://blog.example/join"
    assert subscription.consent_text is not None
    assert subscription.consent_text.startswith("By subscribing you agree to receive")
    assert subscription.requested_at is not None
    assert subscription.confirmation_sent_at is not None
    assert subscription.confirmed_at is None
    rows = await outbox_rows(session)
    assert [(r.kind, r.rcpt_to, r.mail_from, r.subscription_id) for r in rows] == [
        ("confirmation", "Reader@example.com", "news@example.com", subscription.id)
    ]


async def test_form_subscribe_answers_a_check_your_inbox_page_and_stores_shown_consent(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    form_page = (await client.get("/newsletters/weekly/subscribe")).text
    response = await client.post(
        "/newsletters/weekly/subscribe", data={"email": "form@example.com", "name": "Fo Rm"}
    )
    assert response.status_code in (200, 202)
    assert "text/html" in response.headers["content-type"]
    assert "Check your inbox" in response.text
    subscription = await subscription_of(session, "form@example.com")
    assert subscription is not None
    assert subscription.status == "pending"
    assert subscription.consent_text is not None
    assert f'id="consent">{subscription.consent_text}</p>' in form_page
    assert subscription.page == "http://testserver/newsletters/weekly/subscribe"
    subscriber = (
        await session.execute(select(Subscriber).where(Subscriber.email == "form@example.com"))
    ).scalar_one()
    assert subscriber.name == "Fo Rm"


async def test_multipart_form_is_accepted(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    response = await client.post(
        "/newsletters/weekly/subscribe",
        files={"email": (None, "multi@example.com"), "name": (None, "Mu")},
    )
    assert response.status_code in (200, 202)
    assert await subscription_of(session, "multi@example.com") is not None


async def test_without_double_opt_in_the_reader_is_active_at_once_and_gets_no_mail(
    client: AsyncClient, session: AsyncSession
) -> None:
    await create_newsletter(session, slug="direct", double_opt_in=False)
    response = await client.post("/newsletters/direct/subscribe", json={"email": "d@example.com"})
    assert response.status_code == 202
    assert response.json() == {"status": "active"}
    subscription = await subscription_of(session, "d@example.com")
    assert subscription is not None
    assert subscription.status == "active"
    assert await outbox_rows(session) == []
    form = await client.post("/newsletters/direct/subscribe", data={"email": "e@example.com"})
    assert "You&#39;re subscribed" in form.text or "You're subscribed" in form.text


async def test_the_answer_is_the_same_for_new_and_existing_addresses(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    await create_subscription(session, newsletter, "active@example.com")
    await create_subscription(
        session, newsletter, "gone@example.com", status=SubscriptionStatus.unsubscribed
    )
    await create_subscription(
        session, newsletter, "spam@example.com", status=SubscriptionStatus.complained
    )
    await suppress(session, "blocked@example.com", SuppressionReason.hard_bounce)
    await session.commit()
    await client.post("/newsletters/weekly/subscribe", json={"email": "pending@example.com"})

    addresses = [
        "new@example.com",
        "pending@example.com",
        "active@example.com",
        "gone@example.com",
        "spam@example.com",
        "blocked@example.com",
    ]
    json_answers = set()
    form_answers = set()
    for address in addresses:
        r = await client.post("/newsletters/weekly/subscribe", json={"email": address})
        json_answers.add((r.status_code, r.text, r.headers["content-type"]))
        f = await client.post("/newsletters/weekly/subscribe", data={"email": address})
        form_answers.add((f.status_code, f.text, f.headers["content-type"]))
    assert len(json_answers) == 1, json_answers
    assert len(form_answers) == 1
    # Nothing was stored for the suppressed address.
    assert await subscription_of(session, "blocked@example.com") is None


async def test_existing_subscriptions_are_handled_quietly(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    active = await create_subscription(session, newsletter, "active@example.com", name="Al")
    gone = await create_subscription(
        session, newsletter, "gone@example.com", status=SubscriptionStatus.unsubscribed
    )
    for address in ("active@example.com", "gone@example.com"):
        await client.post(
            "/newsletters/weekly/subscribe", json={"email": address, "name": "Mallory"}
        )
    rows = await outbox_rows(session)
    # The active reader gets nothing; the one who left must confirm again.
    assert [r.rcpt_to for r in rows] == ["gone@example.com"]
    await session.refresh(active)
    await session.refresh(gone)
    assert active.status == "active"
    assert gone.status == "pending"
    assert gone.unsubscribed_at is None
    # A stranger's form post does not rename an existing subscriber.
    names = (await session.execute(select(Subscriber.name).order_by(Subscriber.id))).scalars()
    assert list(names) == ["Al", ""]


async def test_a_pending_address_gets_the_confirmation_again_at_most_every_few_minutes(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    for _ in range(3):
        r = await client.post("/newsletters/weekly/subscribe", json={"email": "p@example.com"})
        assert r.status_code == 202
    assert len(await outbox_rows(session)) == 1
    subscription = await subscription_of(session, "p@example.com")
    assert subscription is not None
    subscription.confirmation_sent_at = utcnow() - timedelta(minutes=11)
    await session.commit()
    await client.post("/newsletters/weekly/subscribe", json={"email": "p@example.com"})
    rows = await outbox_rows(session)
    assert len(rows) == 2
    assert rows[0].message_id != rows[1].message_id


async def test_honeypot_answers_success_and_stores_nothing(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    normal = await client.post("/newsletters/weekly/subscribe", data={"email": "h@example.com"})
    bot = await client.post(
        "/newsletters/weekly/subscribe",
        data={"email": "bot@example.com", "website": "http://spam.example"},
    )
    assert (bot.status_code, bot.text) == (normal.status_code, normal.text)
    bot_json = await client.post(
        "/newsletters/weekly/subscribe",
        json={"email": "bot2@example.com", "website": "x"},
    )
    assert bot_json.status_code == 202
    assert bot_json.json() == {"status": "pending"}
    assert await subscription_of(session, "bot@example.com") is None
    assert await subscription_of(session, "bot2@example.com") is None
    assert await count(session, Subscriber) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": ""}, "email"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": 42}, "email"),
        ({"email": "ok@example.com", "name": ["x"]}, "name"),
        ({"email": "ok@example.com", "name": "x" * 201}, "name"),
    ],
)
async def test_invalid_json_input_is_422_naming_the_field(
    client: AsyncClient,
    session: AsyncSession,
    newsletter: Newsletter,
    body: dict[str, object],
    field: str,
) -> None:
    response = await client.post("/newsletters/weekly/subscribe", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert await count(session, Subscription) == 0


@pytest.mark.parametrize("char", LINE_BREAKS)
@pytest.mark.parametrize("field", ["email", "name"])
async def test_line_breaks_in_the_address_or_name_are_refused(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter, char: str, field: str
) -> None:
    body = {"email": "ok@example.com", "name": "Ann"}
    body[field] = f"ok{char}Bcc: victim@example.com" if field == "email" else f"Ann{char}Bcc: x"
    response = await client.post("/newsletters/weekly/subscribe", json=body)
    assert response.status_code == 422, body
    assert response.json()["detail"][0]["loc"] == ["body", field]
    form = await client.post("/newsletters/weekly/subscribe", data=body)
    assert form.status_code == 400
    assert 'aria-invalid="true"' in form.text
    assert await count(session, Subscription) == 0


async def test_invalid_form_input_re_shows_the_form_with_the_message(
    client: AsyncClient, newsletter: Newsletter
) -> None:
    response = await client.post(
        "/newsletters/weekly/subscribe", data={"email": "nobody", "name": "<b>Nob</b>"}
    )
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert 'role="alert"' in response.text
    assert "Enter a valid email address" in response.text
    assert 'value="nobody"' in response.text
    assert "&lt;b&gt;Nob&lt;/b&gt;" in response.text  # escaped, never markup
    assert "<b>Nob</b>" not in response.text


async def test_malformed_json_is_422_and_other_content_types_are_415(
    client: AsyncClient, newsletter: Newsletter
) -> None:
    bad = await client.post(
        "/newsletters/weekly/subscribe",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 422
    not_object = await client.post("/newsletters/weekly/subscribe", json=["a@example.com"])
    assert not_object.status_code == 422
    for content_type in ("text/plain", "application/xml", ""):
        response = await client.post(
            "/newsletters/weekly/subscribe",
            content=b"email=a@example.com",
            headers={"Content-Type": content_type} if content_type else {},
        )
        assert response.status_code == 415, content_type


async def test_oversized_body_is_413(client: AsyncClient, newsletter: Newsletter) -> None:
    response = await client.post(
        "/newsletters/weekly/subscribe", json={"email": "a@example.com", "name": "x" * 2_000_000}
    )
    assert response.status_code == 413


async def test_too_many_requests_from_one_client_get_429_with_retry_after(
    client_with: ClientFactory, session: AsyncSession, newsletter: Newsletter
) -> None:
    async with client_with(peer="203.0.113.9", subscribe_rate_limit="3/minute") as client:
        for i in range(3):
            r = await client.post(
                "/newsletters/weekly/subscribe", json={"email": f"r{i}@example.com"}
            )
            assert r.status_code == 202
        limited = await client.post(
            "/newsletters/weekly/subscribe", json={"email": "r9@example.com"}
        )
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["detail"]
        page = await client.post("/newsletters/weekly/subscribe", data={"email": "r8@example.com"})
        assert page.status_code == 429
        assert "text/html" in page.headers["content-type"]
        assert int(page.headers["retry-after"]) >= 1
        assert "Too many attempts" in page.text
    assert await subscription_of(session, "r9@example.com") is None
    # Another client is not affected.
    async with client_with(peer="198.51.100.7", subscribe_rate_limit="3/minute") as other:
        r = await other.post("/newsletters/weekly/subscribe", json={"email": "o@example.com"})
        assert r.status_code == 202


async def test_one_address_cannot_be_bombed_from_many_clients(
    client_with: ClientFactory, session: AsyncSession, newsletter: Newsletter
) -> None:
    statuses = []
    # Case variants of one mailbox share the allowance.
    spellings = ["victim@example.com"] * 2 + ["Victim@example.com", "victim@EXAMPLE.com"]
    for i, spelling in enumerate(spellings):
        async with client_with(peer=f"192.0.2.{i + 1}", subscribe_address_limit="2/hour") as client:
            r = await client.post("/newsletters/weekly/subscribe", json={"email": spelling})
            statuses.append((r.status_code, r.headers.get("retry-after")))
    assert [s for s, _ in statuses] == [202, 202, 429, 429]
    assert all(1 <= int(ra or 0) <= 3600 for s, ra in statuses if s == 429)
    assert len(await outbox_rows(session)) == 1


async def test_rate_counters_store_no_addresses_or_ips(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    from app.models import RateCounter

    await client.post("/newsletters/weekly/subscribe", json={"email": "secret@example.com"})
    keys = list((await session.execute(select(RateCounter.key))).scalars())
    assert len(keys) == 2
    assert not any("secret" in key or "127.0.0.1" in key for key in keys)


async def test_a_non_ascii_local_part_is_accepted_only_with_smtputf8(
    client_with: ClientFactory, session: AsyncSession, newsletter: Newsletter
) -> None:
    async with client_with(smtputf8=False) as plain:
        refused = await plain.post(
            "/newsletters/weekly/subscribe", json={"email": "zoë@example.com"}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "email"]
    async with client_with(smtputf8=True) as utf8:
        accepted = await utf8.post(
            "/newsletters/weekly/subscribe", json={"email": "zoë@example.com"}
        )
        assert accepted.status_code == 202
    (row,) = await outbox_rows(session)
    assert row.rcpt_to == "zoë@example.com"


async def test_token_pages_cannot_be_framed_or_cached(
    client: AsyncClient, session: AsyncSession, newsletter: Newsletter
) -> None:
    from app.kit.links import unsubscribe_token
    from app.kit.tokens import Signer
    from tests.conftest import SECRET

    subscription = await create_subscription(session, newsletter, "f@example.com")
    token = unsubscribe_token(Signer(SECRET.encode()), subscription.id)
    response = await client.get(f"/unsubscribe/{token}")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
