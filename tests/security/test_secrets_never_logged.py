"""Secrets never reach logs or error pages (SPEC section 8): the SMTP password inside
SMTP_URL, API keys, SECRET_KEY and WEBHOOK_SECRET. Real `worker` and `serve` processes are
pointed at an SMTP server that is not there, with a password in its URL, and their whole
output is searched; in-process requests are searched through caplog."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.models import OutboxMessage
from tests.factories import WorkerProcess
from tests.reliability.harness import ApiServer, seed_send, worker_env
from tests.smtp import free_port

SMTP_PASSWORD = "smtp-pa55word-0f-the-relay"
ADMIN_KEY = "bootstrap-admin-key-never-to-be-logged-0123"
WEBHOOK = "webhook-secret-never-to-be-logged-4567"
SECRET_KEY = "secret-key-never-to-be-logged-89abcdef"
OLD_KEY = "previous-secret-never-to-be-logged-0001"
SECRETS = [SMTP_PASSWORD, ADMIN_KEY, WEBHOOK, SECRET_KEY, OLD_KEY]


def secret_env(database_url: str) -> dict[str, str]:
    dead = free_port()  # nothing listens here
    return worker_env(
        database_url,
        f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{dead}",
        BROADSHEET_SECRET_KEY=SECRET_KEY,
        BROADSHEET_PREVIOUS_SECRET_KEYS=OLD_KEY,
        BROADSHEET_ADMIN_API_KEY=ADMIN_KEY,
        BROADSHEET_WEBHOOK_SECRET=WEBHOOK,
        BROADSHEET_LOG_LEVEL="DEBUG",
    )


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} contains a secret"
    assert "mailer:" not in text, f"{where} contains the SMTP user:password"


async def test_a_worker_failing_to_reach_smtp_never_logs_the_password(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    await seed_send(sessionmaker, client, admin_headers, readers=20, slug="secrets")
    async with unit_of_work(sessionmaker) as session:
        session.add(
            OutboxMessage(
                kind="confirmation",
                mail_from="news@example.org",
                rcpt_to="r@example.com",
                message=b"Subject: x\r\n\r\nx\r\n",
                message_id="<x@example.org>",
            )
        )
    worker = WorkerProcess(
        secret_env(database_url), tmp_path / "worker.log", "worker", "--no-scheduler"
    )
    try:
        deadline = time.monotonic() + 20
        # Bounded wait until it has tried (and failed) to connect a few times.
        while time.monotonic() < deadline and worker.output().lower().count("unreachable") < 3:
            await asyncio.sleep(0.2)
        assert worker.terminate(timeout=60) == 0
    finally:
        worker.close()
    output = worker.output()
    assert "smtp://127.0.0.1" in output, output[-2000:]  # it did say which server failed
    assert_no_secret(output, "worker output")


async def test_the_api_server_never_logs_secrets_nor_shows_them_on_error_pages(
    database_url: str, tmp_path: Path
) -> None:
    api = ApiServer(secret_env(database_url), tmp_path / "api.log")
    bodies: list[str] = []
    try:
        async with httpx.AsyncClient() as http:
            await api.wait_ready(http)
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            for method, path, kwargs in [
                ("GET", "/api/v1/keys", {"headers": admin}),
                (
                    "POST",
                    "/api/v1/keys",
                    {"headers": admin, "json": {"name": "ops", "role": "admin"}},
                ),
                ("GET", "/api/v1/keys", {"headers": {"Authorization": f"Bearer {ADMIN_KEY}x"}}),
                (
                    "POST",
                    "/api/v1/webhooks/bounces",
                    {"headers": {"Authorization": f"Bearer {WEBHOOK}"}, "json": {"email": "x"}},
                ),
                (
                    "POST",
                    "/api/v1/webhooks/bounces",
                    {"headers": {"Authorization": f"Bearer {WEBHOOK}"}, "content": b"\xff{"},
                ),
                ("GET", f"/confirm/{SECRET_KEY}", {}),
                ("POST", f"/confirm/{SECRET_KEY}", {}),
                ("GET", f"/unsubscribe/{SECRET_KEY}", {}),
                ("GET", "/t/c/x", {}),
                ("GET", "/metrics", {}),
                ("POST", "/newsletters/none/subscribe", {"json": {"email": "a@b"}}),
            ]:
                response = await http.request(method, api.url + path, **kwargs)  # type: ignore[arg-type]
                assert response.status_code < 500, (path, response.text[:500])
                body = response.text
                if path == "/api/v1/keys" and method == "POST":
                    created = response.json()["key"]
                    SECRETS.append(created)  # the new key: shown once, in this answer only
                    body = body.replace(created, "")
                bodies.append(body)
    finally:
        api.close()
    for body in bodies:
        assert_no_secret(body, "a response body")
    assert_no_secret(api.worker.output(), "API server output")


async def test_requests_in_process_log_no_secret(
    client: AsyncClient,
    admin_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = admin_headers["Authorization"].split()[1]
    await client.get("/api/v1/keys", headers=admin_headers)
    created = await client.post(
        "/api/v1/keys", json={"name": "n", "role": "editor"}, headers=admin_headers
    )
    new_key = created.json()["key"]
    await client.get("/api/v1/keys", headers={"Authorization": f"Bearer {new_key}"})
    await client.post(
        "/api/v1/webhooks/bounces",
        json={"email": "x@example.com", "kind": "hard"},
        headers={"Authorization": "Bearer webhook-secret-0123456789"},
    )
    text = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    for secret in (key, new_key, "webhook-secret-0123456789", "test-secret-key-0123456789abcdef"):
        assert secret not in text
