"""`/admin/keys`, `/admin/users` and `/admin/audit`: admin only, every action audited."""

from __future__ import annotations

import re

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.kit.db import unit_of_work
from app.kit.errors import Conflict
from app.models import ApiKey, AuditEvent, Role, User
from tests.admin.support import ORIGIN, PASSWORD, Editor, log_in, make_user

NEW_PASSWORD = "a brand new passphrase"


async def post(who: Editor, path: str, **fields: str) -> Response:
    return await who.client.post(
        path, data=who.form(**fields), headers={"Origin": ORIGIN, "Accept": "text/html"}
    )


async def audit_rows(session: AsyncSession) -> list[tuple[str, str, str]]:
    rows = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    return [(row.actor, row.action, row.subject) for row in rows]


async def user_row(session: AsyncSession, email: str) -> User:
    session.expire_all()
    return (await session.scalars(select(User).where(User.email == email))).one()


async def logged_in_writer(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> tuple[Editor, User]:
    """writer@example.com, a new editor, logged in: its client and its row."""
    await make_user(sessionmaker, "writer@example.com")
    return await log_in(client, "writer@example.com"), await user_row(session, "writer@example.com")


async def actions_on(session: AsyncSession, subject: str) -> list[str]:
    return [action for _, action, about in await audit_rows(session) if about == subject]


@pytest.mark.parametrize("path", ["/admin/keys", "/admin/users", "/admin/audit"])
async def test_an_editor_gets_the_403_page(editor: Editor, path: str) -> None:
    response = await editor.client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Only an admin" in response.text


async def test_an_editor_cannot_create_a_key_or_a_user(
    editor: Editor, session: AsyncSession
) -> None:
    assert (await post(editor, "/admin/keys", name="x", role="admin")).status_code == 403
    made = await post(
        editor,
        "/admin/users",
        email="new@example.com",
        role="admin",
        password=PASSWORD,
        password_again=PASSWORD,
    )
    assert made.status_code == 403
    assert (await session.scalars(select(ApiKey))).all() == []
    assert (await session.scalars(select(User).where(User.role == "admin"))).all() == []


async def test_a_new_key_is_shown_once_and_works(
    admin: Editor, client: AsyncClient, session: AsyncSession
) -> None:
    empty = await admin.client.get("/admin/keys")
    assert "No API keys yet" in empty.text
    response = await post(admin, "/admin/keys", name="  CMS  ", role="editor")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "will not be shown again" in response.text
    found = re.search(r'id="new-key">(bs_[^<]+)<', response.text)
    assert found is not None
    key = found.group(1)
    api = await client.get("/api/v1/keys", headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 403  # an editor key: known, but not an admin
    row = (await session.scalars(select(ApiKey))).one()
    assert (row.name, row.role) == ("CMS", "editor")
    # Listed afterwards by its prefix, never the key itself.
    listing = await admin.client.get("/admin/keys")
    assert row.prefix in listing.text
    assert key not in listing.text
    assert await audit_rows(session) == [
        ("user admin@example.com", "key.create", f"key {row.id} CMS")
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "role": "editor"}, "The name"),
        ({"name": "ok", "role": "owner"}, "The role"),
        ({"name": "two\nlines", "role": "editor"}, "line breaks"),
    ],
)
async def test_a_bad_key_form_is_refused_with_a_message(
    admin: Editor, session: AsyncSession, fields: dict[str, str], message: str
) -> None:
    response = await post(admin, "/admin/keys", **fields)
    assert response.status_code == 400
    assert message in response.text
    assert (await session.scalars(select(ApiKey))).all() == []


async def test_revoking_a_key_refuses_it_at_once(
    admin: Editor,
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    from app.keys.service import create_key

    async with unit_of_work(sessionmaker) as work:
        row, key = await create_key(work, name="ops", role=Role.admin)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/keys", headers=headers)).status_code == 200
    response = await post(admin, f"/admin/keys/{row.id}/revoke")
    assert response.status_code == 303
    assert (await client.get("/api/v1/keys", headers=headers)).status_code == 401
    page = await admin.client.get("/admin/keys")
    assert "revoked" in page.text
    assert "ops is revoked" in page.text  # the flash
    again = await post(admin, f"/admin/keys/{row.id}/revoke")
    assert again.status_code == 303
    assert [a for _, a, _ in await audit_rows(session)] == ["key.revoke"]
    missing = await post(admin, "/admin/keys/999999/revoke")
    assert missing.status_code == 404


async def test_key_forms_need_the_csrf_token_and_this_origin(
    admin: Editor, session: AsyncSession
) -> None:
    no_token = await admin.client.post(
        "/admin/keys", data={"name": "x"}, headers={"Origin": ORIGIN, "Accept": "text/html"}
    )
    assert no_token.status_code == 403
    foreign = await admin.client.post(
        "/admin/keys",
        data=admin.form(name="x"),
        headers={"Origin": "https://evil.example", "Accept": "text/html"},
    )
    assert foreign.status_code == 403
    assert (await session.scalars(select(ApiKey))).all() == []


async def test_an_admin_adds_a_user_who_can_log_in(
    admin: Editor, client: AsyncClient, session: AsyncSession
) -> None:
    response = await post(
        admin,
        "/admin/users",
        email="Writer@Example.com",
        role="editor",
        password=NEW_PASSWORD,
        password_again=NEW_PASSWORD,
    )
    assert response.status_code == 303
    page = await admin.client.get("/admin/users")
    # The domain is lower-cased; the local part stays as typed (login ignores its case).
    assert "Writer@example.com can now log in as editor" in page.text
    assert "never" in page.text  # not logged in yet
    writer = await log_in(client, "writer@example.com", NEW_PASSWORD)
    assert (await writer.client.get("/admin/users")).status_code == 403
    assert ("user admin@example.com", "user.create", "Writer@example.com") in await audit_rows(
        session
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not an address", "password_again": PASSWORD}, "mail"),
        ({"email": "a@example.com", "password_again": "something else"}, "differ"),
        (
            {"email": "a@example.com", "role": "owner", "password_again": PASSWORD},
            "admin or editor",
        ),
        (
            {"email": "a@example.com", "password": "short", "password_again": "short"},
            "at least 10 characters",
        ),
        ({"email": "admin@example.com", "password_again": PASSWORD}, "exists already"),
    ],
)
async def test_a_bad_user_form_is_refused_with_a_message(
    admin: Editor, session: AsyncSession, fields: dict[str, str], message: str
) -> None:
    values = {"role": "editor", "password": PASSWORD, **fields}
    response = await post(admin, "/admin/users", **values)
    assert response.status_code == 400
    assert message in response.text
    assert [row.email for row in (await session.scalars(select(User))).all()] == [
        "admin@example.com"
    ]


async def test_an_admin_changes_a_role_and_a_password(
    admin: Editor,
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    writer, user = await logged_in_writer(client, sessionmaker, session)
    promoted = await post(admin, f"/admin/users/{user.id}/role", role="admin")
    assert promoted.status_code == 303
    assert (await user_row(session, "writer@example.com")).role == "admin"
    # The change counts at the writer's next request, on the same session.
    assert (await writer.client.get("/admin/users")).status_code == 200
    changed = await post(
        admin,
        f"/admin/users/{user.id}/password",
        password=NEW_PASSWORD,
        password_again=NEW_PASSWORD,
    )
    assert changed.status_code == 303
    assert (await writer.client.get("/admin")).status_code == 303  # logged out
    session.expire_all()
    assert await accounts.check_login(session, "writer@example.com", NEW_PASSWORD) is not None
    mismatch = await post(
        admin, f"/admin/users/{user.id}/password", password=NEW_PASSWORD, password_again="x"
    )
    assert mismatch.status_code == 400
    assert "differ" in mismatch.text
    assert await actions_on(session, "writer@example.com") == ["user.role", "user.password"]


async def test_disabling_ends_the_sessions_and_enabling_lets_them_back(
    admin: Editor,
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    writer, user = await logged_in_writer(client, sessionmaker, session)
    assert (await post(admin, f"/admin/users/{user.id}/disable")).status_code == 303
    assert (await writer.client.get("/admin")).status_code == 303
    page = await admin.client.get(f"/admin/users/{user.id}")
    assert "writer@example.com is disabled" in page.text
    assert (await post(admin, f"/admin/users/{user.id}/enable")).status_code == 303
    await log_in(client, "writer@example.com")
    assert await actions_on(session, "writer@example.com") == ["user.disable", "user.enable"]


async def test_an_admin_cannot_demote_or_disable_themselves(
    admin: Editor, session: AsyncSession
) -> None:
    me = await user_row(session, "admin@example.com")
    demote = await post(admin, f"/admin/users/{me.id}/role", role="editor")
    assert demote.status_code == 409
    assert "from yourself" in demote.text
    disable = await post(admin, f"/admin/users/{me.id}/disable")
    assert disable.status_code == 409
    assert "cannot disable yourself" in disable.text
    me = await user_row(session, "admin@example.com")
    assert (me.role, me.disabled_at) == ("admin", None)
    assert await audit_rows(session) == []


async def test_the_last_active_admin_stays_an_admin(
    admin: Editor, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    await make_user(sessionmaker, "second@example.com", Role.admin)
    second = await user_row(session, "second@example.com")
    # Two admins: the second may go; then the viewer is the last one.
    assert (await post(admin, f"/admin/users/{second.id}/disable")).status_code == 303
    async with unit_of_work(sessionmaker) as work:
        me = await accounts.get_user(work, "admin@example.com")
        viewer = Viewer(-1, "cli@example.com", Role.admin, 0, "")
        with pytest.raises(Conflict, match="last active admin"):
            await accounts.change_role(work, me, Role.editor, by=viewer)
        with pytest.raises(Conflict, match="last active admin"):
            await accounts.change_disabled(work, me, True, by=viewer)


async def test_user_pages_answer_404_for_an_unknown_user(admin: Editor) -> None:
    response = await admin.client.get("/admin/users/424242", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert (await post(admin, "/admin/users/424242/disable")).status_code == 404


async def test_the_audit_log_pages_newest_first(
    admin: Editor, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    empty = await admin.client.get("/admin/audit")
    assert "Nothing recorded yet" in empty.text
    async with unit_of_work(sessionmaker) as work:
        for n in range(60):
            await accounts.audit(work, "key cron", "issue.send", f"issue {n}")
    first = await admin.client.get("/admin/audit")
    assert first.status_code == 200
    subjects = re.findall(r"issue (\d+)</td>", first.text)
    assert subjects == [str(n) for n in range(59, 9, -1)]
    older = re.search(r'href="/admin/audit\?before=(\d+)"', first.text)
    assert older is not None
    second = await admin.client.get(f"/admin/audit?before={older.group(1)}")
    assert re.findall(r"issue (\d+)</td>", second.text) == [str(n) for n in range(9, -1, -1)]
    assert "?before=" not in second.text
    assert "UTC" in first.text
    bad = await admin.client.get("/admin/audit?before=x", headers={"Accept": "text/html"})
    assert bad.status_code == 422
