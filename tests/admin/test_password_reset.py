"""Forgotten passwords: a link by email through the real outbox, one use, one hour."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.accounts.service import RESET_PURPOSE
from app.kit.tokens import Signer
from app.models import AuditEvent, OutboxMessage, Role
from app.settings import Settings
from tests.admin.support import ORIGIN, PASSWORD, log_in, make_user
from tests.delivery.conftest import running_worker, wait_until
from tests.smtp import MailSink

NEW_PASSWORD = "a brand new passphrase"
SAME_ANSWER = "If an account exists for"


async def ask(client: AsyncClient, address: str, origin: str = ORIGIN) -> str:
    response = await client.post(
        "/admin/password/forgot",
        data={"email": address},
        headers={"Origin": origin, "Accept": "text/html"},
    )
    assert response.status_code == 200, response.text
    return response.text


async def choose(client: AsyncClient, path: str, password: str, again: str | None = None) -> int:
    response = await client.post(
        path,
        data={"password": password, "password_again": password if again is None else again},
        headers={"Origin": ORIGIN, "Accept": "text/html"},
    )
    return response.status_code


def reset_path(message: EmailMessage) -> str:
    text = message.get_body(("plain",))
    assert text is not None
    found = re.search(r"http://testserver(/admin/password/reset/\S+)", text.get_content())
    assert found is not None, text.get_content()
    return found.group(1)


async def test_the_link_arrives_through_the_outbox_and_works_once(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    settings: Settings,
    engine: AsyncEngine,
    mailbox: MailSink,
) -> None:
    await make_user(sessionmaker, "writer@example.com")
    assert SAME_ANSWER in await ask(client, "Writer@Example.com")
    async with running_worker(settings, engine):

        async def arrived() -> bool:
            return bool(mailbox.to("writer@example.com"))

        await wait_until(arrived)
    (captured,) = mailbox.messages
    assert captured.rcpt_tos == ["writer@example.com"]
    message = email.message_from_bytes(captured.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Reset your Broadsheet password"
    assert message["From"] == "Broadsheet <noreply@testserver>"
    assert message["Auto-Submitted"] == "auto-generated"
    path = reset_path(message)
    html = message.get_body(("html",))
    assert html is not None
    assert f'href="http://testserver{path}"' in html.get_content()
    assert "writer@example.com" in html.get_content()
    assert "@@" not in html.get_content()  # every placeholder filled in

    # Opening the link changes nothing, however often.
    for _ in range(2):
        page = await client.get(path)
        assert page.status_code == 200
        assert "writer@example.com" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
    done = await client.post(
        path,
        data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        headers={"Origin": ORIGIN},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/login"
    login = await client.get("/admin/login")
    assert "Your password is changed" in login.text
    await log_in(client, "writer@example.com", NEW_PASSWORD)

    # Spent: neither the page nor the form works again.
    again = await client.get(path, headers={"Accept": "text/html"})
    assert again.status_code == 400
    assert "This link does not work" in again.text
    assert await choose(client, path, "yet another passphrase") == 400
    session.expire_all()
    assert await accounts.check_login(session, "writer@example.com", NEW_PASSWORD) is not None
    actions = (await session.scalars(select(AuditEvent.action))).all()
    assert actions == ["user.reset-mail", "user.password"]


async def test_an_unknown_or_disabled_address_gets_the_same_answer_and_no_mail(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    await make_user(sessionmaker, "gone@example.com")
    async with sessionmaker() as work:
        await accounts.set_disabled(work, await accounts.get_user(work, "gone@example.com"), True)
        await work.commit()
    for address in ("nobody@example.com", "gone@example.com"):
        assert SAME_ANSWER in await ask(client, address)
    assert (await session.scalars(select(OutboxMessage))).all() == []


async def test_an_expired_link_fails(
    client: AsyncClient,
    app: FastAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    await make_user(sessionmaker, "writer@example.com")
    signer: Signer = app.state.signer
    user = await accounts.get_user(session, "writer@example.com")
    user_id, mark, issued = signer.unsign(RESET_PURPOSE, accounts.reset_token(signer, user))
    fresh = signer.sign(RESET_PURPOSE, user_id, mark, int(issued) - 3000)
    old = signer.sign(RESET_PURPOSE, user_id, mark, int(issued) - 3601)
    assert (await client.get(f"/admin/password/reset/{fresh}")).status_code == 200
    expired = await client.get(f"/admin/password/reset/{old}", headers={"Accept": "text/html"})
    assert expired.status_code == 400
    assert await choose(client, f"/admin/password/reset/{old}", NEW_PASSWORD) == 400
    session.expire_all()
    assert await accounts.check_login(session, "writer@example.com", PASSWORD) is not None


async def test_forged_and_mismatched_input_is_refused(
    client: AsyncClient,
    app: FastAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    await make_user(sessionmaker, "writer@example.com", Role.admin)
    user = await accounts.get_user(session, "writer@example.com")
    path = f"/admin/password/reset/{accounts.reset_token(app.state.signer, user)}"
    forged = await client.get("/admin/password/reset/abc.def", headers={"Accept": "text/html"})
    assert forged.status_code == 400
    response = await client.post(
        path,
        data={"password": NEW_PASSWORD, "password_again": "something else"},
        headers={"Origin": ORIGIN, "Accept": "text/html"},
    )
    assert response.status_code == 400
    assert "twice" in response.text
    short = await client.post(
        path,
        data={"password": "short", "password_again": "short"},
        headers={"Origin": ORIGIN, "Accept": "text/html"},
    )
    assert short.status_code == 400
    assert "at least 10 characters" in short.text
    foreign = await client.post(
        path,
        data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        headers={"Origin": "https://evil.example", "Accept": "text/html"},
    )
    assert foreign.status_code == 403
    # None of those spent the link.
    assert await choose(client, path, NEW_PASSWORD) == 303


async def test_the_forgot_form_checks_its_input_origin_and_rate(
    client: AsyncClient, session: AsyncSession
) -> None:
    page = await client.get("/admin/password/forgot")
    assert page.status_code == 200
    assert 'name="email"' in page.text
    empty = await client.post(
        "/admin/password/forgot",
        data={"email": " "},
        headers={"Origin": ORIGIN, "Accept": "text/html"},
    )
    assert empty.status_code == 400
    assert "Enter your email address" in empty.text
    foreign = await client.post(
        "/admin/password/forgot",
        data={"email": "a@example.com"},
        headers={"Origin": "https://evil.example", "Accept": "text/html"},
    )
    assert foreign.status_code == 403
    statuses = []
    for _ in range(11):
        response = await client.post(
            "/admin/password/forgot",
            data={"email": "someone@example.com"},
            headers={"Origin": ORIGIN},
        )
        statuses.append(response.status_code)
    assert statuses == [200] * 10 + [429]
    assert int(response.headers["retry-after"]) > 0
