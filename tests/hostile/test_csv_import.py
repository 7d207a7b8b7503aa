"""Hostile CSV imports against a real API server process: a BOM, other encodings, quoted
newlines, NUL bytes, an unterminated quote, 1,000,000 columns, 1,000,000 short lines. Each
gets a clear answer (counts with the bad lines named, or a 4xx saying why), never a 5xx,
and the server's peak resident memory stays bounded (read from /proc, not timed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.models import Subscriber
from tests.factories import create_newsletter
from tests.reliability.harness import ApiServer, report, worker_env

# The server may grow by this much over its resting size while eating any of the files
# below (the largest is 20 MB; buffering any whole file would show).
MAX_GROWTH_BYTES = 60 * 1024 * 1024
CHUNK = 64 * 1024


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def current_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def lines(count: int, make: Any) -> Iterator[bytes]:
    buffer: list[bytes] = []
    size = 0
    for i in range(count):
        line = make(i)
        buffer.append(line)
        size += len(line)
        if size >= CHUNK:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def million_columns() -> Iterator[bytes]:
    yield b"email"
    yield from lines(1_000_000, lambda i: b",c%d" % i)
    yield b"\r\nok@example.com" + b",x" * 10 + b"\r\n"


def million_short_lines() -> Iterator[bytes]:
    yield b"email\n"
    yield from lines(1_000_000, lambda i: b"x%d\n" % (i % 10))


def unterminated_quote() -> Iterator[bytes]:
    yield b'email,name\r\nq@example.com,"'
    yield from lines(20 * 1024 * 1024 // CHUNK, lambda i: b"a" * (CHUNK - 1) + b"\n")


SMALL_CASES: dict[str, bytes] = {
    "utf-8 BOM": "\ufeffemail,name\r\nbom@example.com,Zoë\r\n".encode(),
    "latin-1": "email,name\r\nlatin@example.com,Jos\xe9 M\xfcller\r\n".encode("latin-1"),
    "utf-16 with BOM": "email,name\r\nutf16@example.com,Zoë\r\n".encode("utf-16"),
    "quoted newlines": b'email,name\r\nquoted@example.com,"two\nlines"\r\nnext@example.com,ok\r\n',
    "NUL bytes": b"email,name\r\nnul@example.com,a\x00b\r\n",
    "header injection": b'email,name\r\n"inj@example.com\r\nBcc: x@evil.example",x\r\n',
    "encoded word": b"email,name\r\n=?UTF-8?B?DQpCY2M6IHg=?=@example.com,x\r\n",
    "no email column": b"name,city\r\nx,y\r\n",
    "empty": b"",
    "only a header": b"email\r\n",
    "binary": bytes(range(256)) * 100,
}
BIG_CASES = {
    "1,000,000 columns": million_columns,
    "1,000,000 short lines": million_short_lines,
    "20 MB unterminated quote": unterminated_quote,
}


async def stream(make: Any) -> AsyncIterator[bytes]:
    for chunk in make():
        yield chunk


@pytest.fixture
async def api(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[ApiServer]:
    async with unit_of_work(sessionmaker) as session:
        await create_newsletter(session, slug="imports", double_opt_in=False)
    server = ApiServer(
        worker_env(
            database_url, "smtp://127.0.0.1:1", BROADSHEET_ADMIN_API_KEY="csv-admin-key-0123456789"
        ),
        tmp_path / "api.log",
    )
    async with httpx.AsyncClient() as http:
        await server.wait_ready(http)
    yield server
    server.close()


HEADERS = {"Authorization": "Bearer csv-admin-key-0123456789", "content-type": "text/csv"}


def clear_answer(response: httpx.Response, name: str) -> dict[str, Any]:
    assert response.status_code < 500, (name, response.status_code, response.text[:500])
    body: dict[str, Any] = response.json()
    if response.status_code == 200:
        assert set(body) >= {"created", "updated", "skipped", "invalid"}, body
        for item in body["invalid"]:
            assert item["line"] >= 1
            assert item["reason"]
    else:
        assert body["detail"], body
    return body


async def test_hostile_csv_files_get_clear_answers_and_bounded_memory(
    api: ApiServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    pid = api.worker.process.pid
    url = f"{api.url}/api/v1/newsletters/imports/subscribers/import"
    answers: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=300) as http:
        # Warm up, so the resting size includes everything an import loads.
        clear_answer(
            await http.post(url, content=SMALL_CASES["only a header"], headers=HEADERS), "warm-up"
        )
        resting = current_rss(pid)
        for name, body in SMALL_CASES.items():
            answers[name] = clear_answer(await http.post(url, content=body, headers=HEADERS), name)
        for name, make in BIG_CASES.items():
            response = await http.post(url, content=stream(make), headers=HEADERS)
            answers[name] = clear_answer(response, name)
    growth = peak_rss(pid) - resting
    summary = {
        k: (
            v.get("created"),
            len(v.get("invalid", [])) if isinstance(v.get("invalid"), list) else v.get("detail"),
        )
        for k, v in answers.items()
    }
    report(
        f"[csv] {len(answers)} hostile files, peak RSS growth {growth / 2**20:.1f} MiB: {summary}",
        kind="csv",
        files=len(answers),
        growth_mib=round(growth / 2**20, 1),
        answers=summary,
    )
    assert growth < MAX_GROWTH_BYTES, f"peak RSS grew by {growth / 2**20:.1f} MiB: {summary}"

    # What was stored is clean: no line breaks or NULs in any name, no injected address.
    async with sessionmaker() as session:
        stored = {
            row.email: row.name for row in (await session.execute(select(Subscriber))).scalars()
        }
    for email, name in stored.items():
        assert not any(c in name for c in "\r\n\x00"), (email, name)
        assert "evil.example" not in email
        assert "=?" not in email
    assert "bom@example.com" in stored  # a UTF-8 BOM is not part of the header
    assert "\ufeffemail" not in str(answers["utf-8 BOM"])
    # 1,000,000 short invalid lines: an answer, with the list of bad lines capped.
    million = answers["1,000,000 short lines"]
    if "invalid" in million:
        assert 0 < len(million["invalid"]) <= 1000
