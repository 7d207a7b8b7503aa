"""`broadsheet dev`: the whole service in one process, with a mail catcher you can read.

Messages sent by the worker go to an aiosmtpd server on 127.0.0.1, are kept as `.eml`
files under `./var/mail/`, and are shown at `/_dev/mail` on the same HTTP server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response

from app.kit.errors import NotFound

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

    from app.settings import Settings

logger = logging.getLogger("broadsheet.dev")
MAIL_DIR = Path("var/mail")


class _Catcher:
    """aiosmtpd handler: every accepted message is written to MAIL_DIR as one file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.counter = len(list(self.directory.glob("*.eml")))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.counter += 1
        name = f"{self.counter:06d}.eml"
        content: bytes = envelope.original_content or envelope.content
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        (self.directory / name).write_bytes(header + content)
        return "250 Message accepted for delivery"


def mail_router(directory: Path) -> APIRouter:
    router = APIRouter(prefix="/_dev/mail", include_in_schema=False)

    def _files() -> list[Path]:
        return sorted(directory.glob("*.eml"), reverse=True)

    @router.get("", response_class=HTMLResponse)
    async def inbox() -> str:
        rows = []
        for path in _files()[:200]:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            rows.append(
                f'<li><a href="/_dev/mail/{path.stem}"><strong>'
                f"{html.escape(str(msg['Subject'] or '(no subject)'))}</strong></a>"
                f"<span>to {html.escape(str(msg['To'] or ''))} · "
                f"{html.escape(str(msg['Date'] or ''))}</span></li>"
            )
        items = "".join(rows) or "<li>No mail yet. Subscribe to a newsletter to get some.</li>"
        return _page("Caught mail", f'<ul class="inbox">{items}</ul>')

    @router.get("/{stem}", response_class=HTMLResponse)
    async def show(stem: str) -> str:
        path = _safe(directory, stem)
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        html_part = msg.get_body(("html",))
        text_part = msg.get_body(("plain",))
        headers = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in msg.items()
        )
        body = (
            '<p><a href="/_dev/mail">&larr; All mail</a> · '
            f'<a href="/_dev/mail/{stem}/raw">raw</a></p>'
        )
        body += f"<h2>{html.escape(str(msg['Subject'] or ''))}</h2>"
        body += f'<table class="headers">{headers}</table>'
        if html_part is not None:
            content = _links_in_new_tabs(html_part.get_content())
            # No allow-scripts: nothing in a caught email runs. allow-same-origin (safe
            # without scripts) lets dev-mail.js read the email's height to fit the
            # frame; allow-popups lets its links open in new tabs.
            body += (
                '<h3>HTML</h3><iframe class="mail-frame" '
                'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" '
                f'title="HTML part" srcdoc="{html.escape(content, quote=True)}"></iframe>'
            )
        if text_part is not None:
            body += f"<h3>Text</h3><pre>{html.escape(text_part.get_content())}</pre>"
        return _page(str(msg["Subject"] or "Message"), body)

    @router.get("/{stem}/raw")
    async def raw(stem: str) -> Response:
        return Response(_safe(directory, stem).read_bytes(), media_type="text/plain")

    return router


_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)


def _links_in_new_tabs(content: str) -> str:
    """The email's HTML with every link opening in a new tab.

    Inside the frame a link would open in the frame, and the pages it leads to (the
    confirm and unsubscribe pages) refuse to be framed: `<base target="_blank">` sends
    each one to a tab of its own, as a mail client does.
    """
    base = '<base target="_blank">'
    match = _HEAD.search(content)
    if match is None:
        return base + content
    return content[: match.end()] + base + content[match.end() :]


def _safe(directory: Path, stem: str) -> Path:
    if not stem.isdigit():
        raise NotFound("no such message")
    path = directory / f"{stem}.eml"
    if not path.is_file():
        raise NotFound("no such message")
    return path


def _page(title: str, body: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Broadsheet dev mail</title>
<link rel="stylesheet" href="/static/broadsheet.css">
<script src="/static/dev-mail.js" defer></script></head>
<body class="dev-mail"><main class="card wide"><h1>Caught mail</h1>{body}</main></body></html>"""


async def _ensure_admin_key(sessionmaker: Any, key_file: Path) -> str:
    from app.keys.service import create_key, is_active
    from app.kit.db import unit_of_work
    from app.models import Role

    async with unit_of_work(sessionmaker) as session:
        if key_file.is_file():
            key = key_file.read_text().strip()
            if await is_active(session, key):
                return key
        _, key = await create_key(session, name="dev admin", role=Role.admin)
    key_file.write_text(key + "\n")
    os.chmod(key_file, 0o600)
    return key


DEV_ADMIN_EMAIL = "admin@localhost.test"


async def _ensure_dev_admin(sessionmaker: Any) -> tuple[str, str]:
    """The development admin's login, with a new random password at every start.

    Created on the first start; afterwards its password is reset (which ends its old
    sessions), and it is an enabled admin again, so the printed login always works.
    """
    import secrets

    from app.accounts import service as accounts
    from app.kit.db import unit_of_work
    from app.models import Role

    password = secrets.token_urlsafe(12)
    async with unit_of_work(sessionmaker) as session:
        user = await accounts.find_user(session, DEV_ADMIN_EMAIL)
        if user is None:
            user = await accounts.create_user(
                session, email=DEV_ADMIN_EMAIL, role=Role.admin, password=password
            )
            await accounts.audit(session, "broadsheet dev", "user.create", user.email, "role admin")
        else:
            await accounts.set_password(session, user, password)
            await accounts.set_role(session, user, Role.admin)
            await accounts.set_disabled(session, user, False)
            await accounts.audit(session, "broadsheet dev", "user.password", user.email)
    return DEV_ADMIN_EMAIL, password


def run_dev(*, host: str, port: int, smtp_port: int) -> None:
    from app.kit.cli import (
        configure_logging,
        dev_overrides,
        install_event_loop_policy,
        settings_or_exit,
    )
    from app.kit.migrate import upgrade

    settings = settings_or_exit(**dev_overrides(host=host, port=port, smtp_port=smtp_port))
    configure_logging(settings)
    # aiosmtpd logs every connection at INFO; the catcher's web page says what arrived.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    Path("var").mkdir(exist_ok=True)
    upgrade(settings.database_url)

    catcher = _start_catcher(smtp_port)
    install_event_loop_policy()
    try:
        asyncio.run(_serve(settings, host=host, port=port, smtp_port=smtp_port))
    finally:
        catcher.stop()


def _start_catcher(smtp_port: int) -> Controller:
    from aiosmtpd.controller import Controller

    catcher = Controller(_Catcher(MAIL_DIR), hostname="127.0.0.1", port=smtp_port)
    try:
        catcher.start()
    except (OSError, RuntimeError) as exc:
        print(  # noqa: T201
            f"error: cannot start the mail catcher on 127.0.0.1:{smtp_port} ({exc}); "
            "is another `broadsheet dev` running? Pick another port with --smtp-port.",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    return catcher


async def _serve(settings: Settings, *, host: str, port: int, smtp_port: int) -> None:
    """The web server and the worker on one engine, until the server stops (Ctrl+C)."""
    import uvicorn

    from app.kit.db import create_engine, create_sessionmaker
    from app.main import create_app
    from app.worker import run_worker

    engine = create_engine(settings.database_url)
    app: FastAPI = create_app(settings, engine=engine)
    app.include_router(mail_router(MAIL_DIR))
    sessionmaker = create_sessionmaker(engine)
    key = await _ensure_admin_key(sessionmaker, Path("var/dev-admin-key"))
    login, password = await _ensure_dev_admin(sessionmaker)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, engine=engine))
    base_url = settings.base_url
    banner = (
        f"\n  Broadsheet is running at {base_url}\n"
        f"  Dashboard:     {base_url}/admin/login\n"
        f"    email:       {login}\n"
        f"    password:    {password}  (new at every start)\n"
        f"  API docs:      {base_url}/docs\n"
        f"  Caught mail:   {base_url}/_dev/mail  (SMTP catcher on 127.0.0.1:{smtp_port})\n"
        f"  Admin API key: {key}\n"
        f"  Database:      {settings.database_url}\n\n"
        "  Press Ctrl+C to stop.\n"
    )
    print(banner, flush=True)  # noqa: T201
    try:
        await server.serve()
    finally:
        stop.set()
        await worker
        await engine.dispose()
