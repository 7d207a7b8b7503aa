"""The subscribers screens: list (search, filter, keyset pages), a subscriber's page,
add, import, export, unsubscribe, delete and erase (SPEC section 11)."""

from __future__ import annotations

import re
from typing import Any

from httpx import Response
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    AuditEvent,
    Delivery,
    Event,
    Issue,
    Newsletter,
    OutboxMessage,
    Subscriber,
    Subscription,
    Suppression,
)
from tests.admin.support import ORIGIN, Editor
from tests.factories import create_issue, create_newsletter, create_readers, create_subscription

BASE = "/admin/newsletters/weekly/subscribers"
EMAIL_CELL = re.compile(r'subscribers/(\d+)">([^<]+)</a>')


def emails_on(page: Response) -> list[str]:
    return [email for _, email in EMAIL_CELL.findall(page.text)]


def link(page: Response, rel: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', page.text)
    return found.group(1).replace("&amp;", "&") if found else None


async def actions(session: AsyncSession) -> list[tuple[str, str, str]]:
    rows = await session.execute(
        select(AuditEvent.action, AuditEvent.subject, AuditEvent.actor).order_by(AuditEvent.id)
    )
    return [(str(a), str(s), str(actor)) for a, s, actor in rows.all()]


async def _post(who: Editor, path: str, **fields: Any) -> Response:
    response = await who.post(path, **fields)
    assert isinstance(response, Response)
    return response


async def test_the_list_searches_email_and_name_and_filters_by_status(
    editor: Editor, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    await create_subscription(session, newsletter, "ada@example.com", "Ada Lovelace")
    await create_subscription(session, newsletter, "grace@navy.example", "Grace Hopper")
    await create_subscription(
        session, newsletter, "alan@example.com", "Alan Turing", status="unsubscribed"
    )
    page = await editor.client.get(BASE)
    assert page.status_code == 200
    assert emails_on(page) == ["ada@example.com", "grace@navy.example", "alan@example.com"]
    assert "<dt>Active</dt><dd>2</dd>" in page.text
    by_name = await editor.client.get(BASE, params={"q": "HOPP"})
    assert emails_on(by_name) == ["grace@navy.example"]
    by_email = await editor.client.get(BASE, params={"q": "example.com"})
    assert emails_on(by_email) == ["ada@example.com", "alan@example.com"]
    filtered = await editor.client.get(BASE, params={"q": "example.com", "status": "active"})
    assert emails_on(filtered) == ["ada@example.com"]
    wildcard = await editor.client.get(BASE, params={"q": "%%%"})
    assert emails_on(wildcard) == []
    assert "No subscribers match" in wildcard.text


async def test_a_search_shorter_than_three_characters_is_not_run(
    editor: Editor, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    await create_readers(session, newsletter, 2)
    await session.commit()
    page = await editor.client.get(BASE, params={"q": "zz"})
    assert page.status_code == 200
    assert "at least 3 characters" in page.text
    assert len(emails_on(page)) == 2


async def test_a_bad_status_or_key_is_a_clear_4xx(editor: Editor, session: AsyncSession) -> None:
    await create_newsletter(session)
    bad = await editor.client.get(BASE, params={"status": "gone"}, headers={"Accept": "text/html"})
    assert bad.status_code == 400
    assert "must be one of" in bad.text
    assert (await editor.client.get(BASE, params={"after": "-1"})).status_code == 422
    missing = await editor.client.get("/admin/newsletters/nope/subscribers")
    assert missing.status_code == 404


async def test_keyset_pages_go_forward_and_back(editor: Editor, session: AsyncSession) -> None:
    newsletter = await create_newsletter(session)
    emails = await create_readers(session, newsletter, 120)
    await session.commit()
    first = await editor.client.get(BASE)
    assert emails_on(first) == emails[:50]
    assert link(first, "prev") is None
    second_url = link(first, "next")
    assert second_url is not None
    assert "after=" in second_url
    second = await editor.client.get(second_url)
    assert emails_on(second) == emails[50:100]
    third = await editor.client.get(str(link(second, "next")))
    assert emails_on(third) == emails[100:]
    assert link(third, "next") is None
    back = await editor.client.get(str(link(third, "prev")))
    assert "before=" in str(link(third, "prev"))
    assert emails_on(back) == emails[50:100]
    start = await editor.client.get(str(link(back, "prev")))
    assert emails_on(start) == emails[:50]
    assert link(start, "prev") is None
    assert link(start, "next") is not None


async def test_pages_keep_the_search_and_the_status(editor: Editor, session: AsyncSession) -> None:
    newsletter = await create_newsletter(session)
    emails = await create_readers(session, newsletter, 60, prefix="match")
    await create_readers(session, newsletter, 10, prefix="other")
    await session.commit()
    first = await editor.client.get(BASE, params={"q": "match", "status": "active"})
    next_url = str(link(first, "next"))
    assert "q=match" in next_url
    assert "status=active" in next_url
    assert emails_on(await editor.client.get(next_url)) == emails[50:]


async def deliver(
    session: AsyncSession,
    issue: Issue,
    subscription: Subscription,
    reply: str,
    *events: tuple[str, str | None],
) -> None:
    """A sent delivery of the issue to the subscription, and its events (kind, url)."""
    delivery_id = (
        await session.execute(
            insert(Delivery)
            .values(
                issue_id=issue.id,
                subscription_id=subscription.id,
                status="sent",
                last_reply=reply,
            )
            .returning(Delivery.id)
        )
    ).scalar_one()
    for kind, url in events:
        await session.execute(
            insert(Event).values(
                kind=kind,
                issue_id=issue.id,
                delivery_id=delivery_id,
                subscription_id=subscription.id,
                url=url,
            )
        )


async def _subscriber_with_history(session: AsyncSession) -> tuple[Newsletter, Subscription]:
    newsletter = await create_newsletter(session, timezone="Europe/Berlin")
    subscription = await create_subscription(
        session, newsletter, "ada@example.com", "Ada", attributes={"city": "London"}
    )
    issue = await create_issue(session, newsletter, status="sent", subject="Engines")
    await deliver(
        session,
        issue,
        subscription,
        "250 2.0.0 queued as 42",
        ("click", "https://example.org/engines"),
    )
    await session.commit()
    return newsletter, subscription


async def test_a_subscribers_page_shows_consent_events_and_deliveries(
    editor: Editor, session: AsyncSession
) -> None:
    _, subscription = await _subscriber_with_history(session)
    page = await editor.client.get(f"{BASE}/{subscription.id}")
    assert page.status_code == 200
    text = page.text
    assert "ada@example.com" in text
    assert "<strong>city</strong>: London" in text
    assert "Consent proof" in text
    assert "Consent text shown" in text
    assert "https://example.org/engines" in text
    assert "250 2.0.0 queued as 42" in text
    # The click and the delivery each link their issue by its number and subject.
    assert len(re.findall(r'href="/admin/issues/\d+">#1 Engines</a>', text)) == 2
    # An editor is not offered erasure.
    assert "/erase" not in text
    assert "/delete" in text
    assert "/unsubscribe" in text
    assert (await editor.client.get(f"{BASE}/999999")).status_code == 404


async def test_adding_a_subscriber_uses_the_api_rules(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session, double_opt_in=False)
    form = await editor.client.get(f"{BASE}/new")
    assert form.status_code == 200
    assert 'name="double_opt_in"' in form.text
    response = await _post(editor, f"{BASE}/new", email=" Ada@Example.COM ", name="Ada")
    assert response.status_code == 303
    page = await editor.client.get(response.headers["location"])
    assert "Added Ada@example.com: active now." in page.text
    row = (await session.execute(select(Subscription.status, Subscription.consent_text))).one()
    assert row[0] == "active"
    assert "editor@example.com" in str(row[1])
    again = await _post(editor, f"{BASE}/new", email="Ada@example.com")
    assert again.status_code == 409
    assert "already has an active subscription" in again.text
    bad = await _post(editor, f"{BASE}/new", email="not an address", name="X")
    assert bad.status_code == 422
    assert 'value="X"' in bad.text  # the form comes back as typed
    audited = await actions(session)
    assert [a[0] for a in audited] == ["subscriber.add"]
    assert audited[0][2] == "user editor@example.com"


async def test_double_opt_in_adds_a_pending_subscriber_and_mails_them(
    editor: Editor, session: AsyncSession
) -> None:
    await create_newsletter(session)
    response = await _post(editor, f"{BASE}/new", email="bo@example.com", double_opt_in="1")
    assert response.status_code == 303
    status = (await session.execute(select(Subscription.status))).scalar_one()
    assert status == "pending"
    outbox = (await session.execute(select(OutboxMessage.rcpt_to))).scalars().all()
    assert outbox == ["bo@example.com"]


CSV = (
    "email,name,city\n"
    "ada@example.com,Ada,London\n"
    "not-an-address,Bad,Nowhere\n"
    "grace@example.com,Grace,\n"
    "ada@example.com,Ada again,Paris\n"
)


async def _import(who: Editor, content: bytes, filename: str = "people.csv") -> Response:
    return await who.client.post(
        f"{BASE}/import",
        data={"csrf_token": who.csrf},
        files={"file": (filename, content, "text/csv")},
        headers={"Origin": ORIGIN},
    )


async def test_import_shows_the_per_line_report(editor: Editor, session: AsyncSession) -> None:
    await create_newsletter(session)
    assert (await editor.client.get(f"{BASE}/import")).status_code == 200
    response = await _import(editor, CSV.encode())
    assert response.status_code == 200
    text = response.text
    assert "Imported people.csv" in text
    assert "<dt>Created</dt><dd>2</dd>" in text
    assert "<dt>Invalid</dt><dd>1</dd>" in text
    assert re.search(r'<td class="num">3</td><td class="wrap">email: ', text)
    emails = (await session.execute(select(Subscriber.email).order_by(Subscriber.email))).all()
    assert [e for (e,) in emails] == ["ada@example.com", "grace@example.com"]
    assert [a[0] for a in await actions(session)] == ["subscriber.import"]
    # The same file again changes nothing.
    again = await _import(editor, CSV.encode())
    assert "<dt>Created</dt><dd>0</dd>" in again.text


async def test_an_unreadable_import_says_why(editor: Editor, session: AsyncSession) -> None:
    await create_newsletter(session)
    no_column = await _import(editor, b"name,city\nAda,London\n")
    assert no_column.status_code == 422
    assert "no &#39;email&#39; column" in no_column.text or "no 'email' column" in no_column.text
    no_file = await editor.client.post(
        f"{BASE}/import", data={"csrf_token": editor.csrf}, headers={"Origin": ORIGIN}
    )
    assert no_file.status_code == 400
    assert "Choose a CSV file" in no_file.text
    assert await session.scalar(select(func.count()).select_from(Subscriber)) == 0


async def test_export_streams_the_apis_csv(editor: Editor, session: AsyncSession) -> None:
    newsletter = await create_newsletter(session)
    await create_subscription(session, newsletter, "ada@example.com", "Ada")
    await create_subscription(session, newsletter, "bo@example.com", status="unsubscribed")
    response = await editor.client.get(f"{BASE}/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="weekly-subscribers.csv"' in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert lines[0].startswith("email,name,status")
    assert [line.split(",")[0] for line in lines[1:]] == ["ada@example.com", "bo@example.com"]
    active = await editor.client.get(f"{BASE}/export", params={"status": "active"})
    assert len(active.text.splitlines()) == 2


async def test_unsubscribe_from_the_dashboard(editor: Editor, session: AsyncSession) -> None:
    _, subscription = await _subscriber_with_history(session)
    response = await _post(editor, f"{BASE}/{subscription.id}/unsubscribe")
    assert response.status_code == 303
    page = await editor.client.get(response.headers["location"])
    assert "is unsubscribed" in page.text
    await session.refresh(subscription)
    assert subscription.status == "unsubscribed"
    kinds = (await session.execute(select(Event.kind).order_by(Event.id))).scalars().all()
    assert kinds == ["click", "unsubscribe"]
    again = await _post(editor, f"{BASE}/{subscription.id}/unsubscribe")
    assert "was not subscribed" in (await editor.client.get(again.headers["location"])).text
    assert [a[0] for a in await actions(session)] == ["subscriber.unsubscribe"]


async def test_delete_removes_the_subscription_only(editor: Editor, session: AsyncSession) -> None:
    _, subscription = await _subscriber_with_history(session)
    response = await _post(editor, f"{BASE}/{subscription.id}/delete")
    assert response.status_code == 303
    assert response.headers["location"] == BASE
    assert await session.scalar(select(func.count()).select_from(Subscription)) == 0
    assert await session.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert await session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert [a[0] for a in await actions(session)] == ["subscriber.delete"]
    assert (await _post(editor, f"{BASE}/{subscription.id}/delete")).status_code == 404


async def test_only_an_admin_erases_a_person(
    editor: Editor, admin: Editor, session: AsyncSession
) -> None:
    _, subscription = await _subscriber_with_history(session)
    refused = await _post(editor, f"{BASE}/{subscription.id}/erase")
    assert refused.status_code == 403
    assert await session.scalar(select(func.count()).select_from(Subscriber)) == 1
    page = await admin.client.get(f"{BASE}/{subscription.id}")
    assert f"{BASE}/{subscription.id}/erase" in page.text
    erased = await _post(admin, f"{BASE}/{subscription.id}/erase")
    assert erased.status_code == 303
    assert await session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert await session.scalar(select(func.count()).select_from(Event)) == 0
    suppressed = (await session.execute(select(Suppression.email, Suppression.reason))).all()
    assert [tuple(row) for row in suppressed] == [("ada@example.com", "erasure")]
    audited = await actions(session)
    assert audited == [
        ("subscriber.erase", f"subscription {subscription.id}", "user admin@example.com")
    ]


async def test_forms_without_the_token_or_from_another_site_change_nothing(
    editor: Editor, session: AsyncSession
) -> None:
    newsletter = await create_newsletter(session)
    subscription = await create_subscription(session, newsletter, "ada@example.com")
    for path in (f"{BASE}/{subscription.id}/unsubscribe", f"{BASE}/{subscription.id}/delete"):
        no_token = await editor.client.post(path, data={}, headers={"Origin": ORIGIN})
        assert no_token.status_code == 403
        foreign = await editor.client.post(
            path, data=editor.form(), headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
    no_token = await editor.client.post(
        f"{BASE}/new", data={"email": "x@example.com"}, headers={"Origin": ORIGIN}
    )
    assert no_token.status_code == 403
    upload = await editor.client.post(
        f"{BASE}/import",
        files={"file": ("a.csv", b"email\nx@example.com\n", "text/csv")},
        headers={"Origin": ORIGIN},
    )
    assert upload.status_code == 403
    await session.refresh(subscription)
    assert subscription.status == "active"
    assert await session.scalar(select(func.count()).select_from(Subscriber)) == 1
