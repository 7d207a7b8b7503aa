"""CSV import (streamed, batched, idempotent) and export (streamed)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Newsletter, Subscriber, Subscription, SubscriptionStatus, SuppressionReason
from app.subscribers.suppression import suppress
from tests.conftest import ROOT
from tests.factories import count, create_subscription, subscription_of

BASE = "/api/v1/newsletters/weekly/subscribers"
CSV = {"Content-Type": "text/csv"}


async def post_csv(
    client: AsyncClient, headers: dict[str, str], data: bytes | str
) -> dict[str, Any]:
    body = data.encode() if isinstance(data, str) else data
    response = await client.post(f"{BASE}/import", content=body, headers={**headers, **CSV})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_import_creates_active_subscriptions_with_names_and_attributes(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = "email,name,city,plan\r\nann@example.com,Ann,Oslo,pro\r\nbob@example.com,,,\r\n"
    result = await post_csv(client, editor_headers, data)
    assert result == {
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "invalid": [],
        "invalid_count": 0,
        "rows": 2,
    }
    ann = await subscription_of(session, "ann@example.com")
    assert ann is not None
    assert ann.status == "active"
    assert ann.source == "import"
    assert ann.consent_text == "imported by test editor"
    subscriber = (
        await session.execute(select(Subscriber).where(Subscriber.email == "ann@example.com"))
    ).scalar_one()
    assert subscriber.name == "Ann"
    assert subscriber.attributes == {"city": "Oslo", "plan": "pro"}


async def test_a_second_import_of_the_same_file_changes_nothing(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = "email,name,team\n" + "".join(f"u{i}@example.com,User {i},t{i % 3}\n" for i in range(50))
    first = await post_csv(client, editor_headers, data)
    assert (first["created"], first["updated"], first["skipped"]) == (50, 0, 0)
    second = await post_csv(client, editor_headers, data)
    assert (second["created"], second["updated"], second["skipped"]) == (0, 0, 50)
    assert await count(session, Subscription) == 50
    changed = data.replace("User 7,", "Seven,")
    third = await post_csv(client, editor_headers, changed)
    assert (third["created"], third["updated"], third["skipped"]) == (0, 1, 49)


async def test_bad_lines_are_reported_with_their_line_numbers(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = (
        "email,name\n"  # line 1
        "good@example.com,Good\n"  # 2
        "not-an-address,Bad\n"  # 3
        "\n"  # 4: blank, ignored
        '"quoted@example.com","Two\nLines"\n'  # 5-6: a line break in a name
        "also good@example.com,Space\n"  # 7
        ",No address\n"  # 8
        "fine@example.com,Fine\n"  # 9
    )
    result = await post_csv(client, editor_headers, data)
    assert result["created"] == 2
    assert [(i["line"], i["reason"].split(":")[0]) for i in result["invalid"]] == [
        (3, "email"),
        (5, "name"),
        (7, "email"),
        (8, "email"),
    ]
    assert result["invalid_count"] == 4
    assert result["rows"] == 6


async def test_quoted_newlines_commas_and_quotes_in_attributes_survive(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = (
        "email,name,notes\r\n"
        '"q@example.com","O\'Neil, Jr.","first line\r\nsecond ""quoted"" line"\r\n'
        "next@example.com,Next,plain\r\n"
    )
    result = await post_csv(client, editor_headers, data)
    assert result["created"] == 2
    assert result["invalid"] == []
    row = (
        await session.execute(select(Subscriber).where(Subscriber.email == "q@example.com"))
    ).scalar_one()
    assert row.name == "O'Neil, Jr."
    assert row.attributes == {"notes": 'first line\r\nsecond "quoted" line'}


async def test_a_utf8_bom_and_header_case_are_handled(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = "\ufeffEmail,Name\nbom@example.com,Zoë\n".encode()
    result = await post_csv(client, editor_headers, data)
    assert result["created"] == 1
    name = (
        await session.execute(select(Subscriber.name).where(Subscriber.email == "bom@example.com"))
    ).scalar_one()
    assert name == "Zoë"


async def test_a_file_without_an_email_column_is_422(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    for data in ("name,city\nAnn,Oslo\n", "", "\n\n"):
        response = await client.post(
            f"{BASE}/import", content=data.encode(), headers={**editor_headers, **CSV}
        )
        assert response.status_code == 422, data
        assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert await count(session, Subscriber) == 0


async def test_non_utf8_bytes_are_reported_not_a_crash(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = b"email,name\nok@example.com,Ok\nlatin1@example.com,Jos\xe9\nok2@example.com,\n"
    result = await post_csv(client, editor_headers, data)
    assert result["created"] == 2
    assert result["invalid"] == [{"line": 3, "reason": "is not valid UTF-8 text"}]
    utf16 = "email\nx@example.com\n".encode("utf-16")
    response = await client.post(f"{BASE}/import", content=utf16, headers={**editor_headers, **CSV})
    assert response.status_code == 422
    bad_header = await client.post(
        f"{BASE}/import", content=b"em\xffail\nx@example.com\n", headers={**editor_headers, **CSV}
    )
    assert bad_header.status_code == 422


async def test_absurdly_long_lines_and_unclosed_quotes_are_invalid_entries(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    long_line = "x" * 3_000_000
    data = (
        f"email,name\na@example.com,A\n{long_line}@example.com,Long\nb@example.com,B\n"
        f'c@example.com,"never closed\n{"y" * 200_000}\n'
    )
    result = await post_csv(client, editor_headers, data)
    assert result["created"] == 2
    lines = [item["line"] for item in result["invalid"]]
    assert 3 in lines
    assert 5 in lines
    assert await count(session, Subscriber) == 2


async def test_suppressed_addresses_are_skipped_and_unsubscribed_people_stay_unsubscribed(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    await suppress(session, "bounced@example.com", SuppressionReason.hard_bounce)
    await create_subscription(
        session, newsletter, "left@example.com", status=SubscriptionStatus.unsubscribed
    )
    data = "email\nbounced@example.com\nleft@example.com\nnew@example.com\nnew@example.com\n"
    result = await post_csv(client, editor_headers, data)
    assert (result["created"], result["updated"], result["skipped"]) == (1, 0, 3)
    assert await subscription_of(session, "bounced@example.com") is None
    left = await subscription_of(session, "left@example.com")
    assert left is not None
    assert left.status == "unsubscribed"


async def test_multipart_upload_with_a_file_field_works(
    client: AsyncClient, editor_headers: dict[str, str], newsletter: Newsletter
) -> None:
    response = await client.post(
        f"{BASE}/import",
        files={"file": ("list.csv", b"email,name\nmp@example.com,Mp\n", "text/csv")},
        headers=editor_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    missing = await client.post(
        f"{BASE}/import", files={"other": ("x.csv", b"email\n", "text/csv")}, headers=editor_headers
    )
    assert missing.status_code == 422


async def test_import_refuses_other_content_types_and_unknown_newsletters(
    client: AsyncClient, editor_headers: dict[str, str], newsletter: Newsletter
) -> None:
    response = await client.post(
        f"{BASE}/import",
        json={"email": "x@example.com"},
        headers=editor_headers,
    )
    assert response.status_code == 415
    unknown = await client.post(
        "/api/v1/newsletters/nope/subscribers/import",
        content=b"email\n",
        headers={**editor_headers, **CSV},
    )
    assert unknown.status_code == 404


async def test_an_export_imports_back_unchanged(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    data = 'email,name,city\na@example.com,"Ann, A.",Oslo\nb@example.com,Bob,\n'
    await post_csv(client, editor_headers, data)
    export = await client.get(f"{BASE}/export", headers=editor_headers)
    result = await post_csv(client, editor_headers, export.content)
    assert (result["created"], result["updated"], result["skipped"]) == (0, 0, 2)


@pytest.mark.slow
async def test_100000_rows_import_in_batches_and_export_streams_every_row(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    rows = 100_000

    async def body() -> AsyncIterator[bytes]:
        yield b"email,name,tier\n"
        for start in range(0, rows, 5000):
            yield "".join(
                f"reader{i}@example{i % 97}.com,Reader {i},t{i % 5}\n"
                for i in range(start, start + 5000)
            ).encode()

    began = time.monotonic()
    response = await client.post(
        f"{BASE}/import", content=body(), headers={**editor_headers, **CSV}
    )
    elapsed = time.monotonic() - began
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["invalid_count"], result["rows"]) == (rows, 0, rows)
    assert await count(session, Subscription) == rows
    print(f"\nimported {rows} rows in {elapsed:.1f}s")  # noqa: T201

    began = time.monotonic()
    export = await client.get(f"{BASE}/export", headers=editor_headers)
    print(f"exported in {time.monotonic() - began:.1f}s")  # noqa: T201
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(export.text))
    exported = list(reader)
    assert len(exported) == rows
    assert exported[0]["email"] == "reader0@example0.com"
    assert exported[-1]["email"] == f"reader{rows - 1}@example{(rows - 1) % 97}.com"
    assert [json.loads(exported[i]["attributes"]) for i in (0, 123)] == [
        {"tier": "t0"},
        {"tier": "t3"},
    ]
    assert len({r["email"] for r in exported}) == rows


async def test_export_has_the_documented_columns_and_filters_by_status(
    client: AsyncClient,
    editor_headers: dict[str, str],
    session: AsyncSession,
    newsletter: Newsletter,
) -> None:
    await create_subscription(session, newsletter, "a@example.com", name="A", attributes={"k": 1})
    await create_subscription(
        session, newsletter, "u@example.com", status=SubscriptionStatus.unsubscribed
    )
    await create_subscription(
        session, newsletter, "p@example.com", status=SubscriptionStatus.pending
    )
    await create_subscription(session, newsletter, "b@example.com")
    export = await client.get(f"{BASE}/export", headers=editor_headers)
    assert "attachment" in export.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(export.text))
    assert reader.fieldnames is not None
    assert reader.fieldnames[:5] == ["email", "name", "status", "source", "created_at"]
    assert {"confirmed_at", "attributes"} <= set(reader.fieldnames)
    rows = list(reader)
    # Every row, grouped by status, in order of subscription within each status.
    assert [(r["email"], r["status"]) for r in rows] == [
        ("a@example.com", "active"),
        ("b@example.com", "active"),
        ("p@example.com", "pending"),
        ("u@example.com", "unsubscribed"),
    ]
    assert json.loads(rows[0]["attributes"]) == {"k": 1}
    pending = await client.get(
        f"{BASE}/export", params={"status": "pending"}, headers=editor_headers
    )
    assert [r["email"] for r in csv.DictReader(io.StringIO(pending.text))] == ["p@example.com"]


def test_command_line_import_uses_the_same_importer(
    database_url: str, tmp_path: Any, engine: Any
) -> None:
    import asyncio

    from app.kit.db import create_engine, create_sessionmaker, unit_of_work
    from app.models import Newsletter as NewsletterModel

    async def arrange() -> None:
        own = create_engine(database_url)
        async with unit_of_work(create_sessionmaker(own)) as session:
            session.add(
                NewsletterModel(
                    slug="cli", name="CLI", from_name="CLI", from_email="cli@example.com"
                )
            )
        await own.dispose()

    asyncio.run(arrange())
    path = tmp_path / "list.csv"
    path.write_text("email,name\ncli1@example.com,One\nbroken,Two\ncli2@example.com,\n")
    env = {**os.environ, "BROADSHEET_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "subscribers", "import", "cli", str(path), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["created"] == 2
    assert report["invalid"] == [{"line": 3, "reason": report["invalid"][0]["reason"]}]
    again = subprocess.run(
        [sys.executable, "-m", "app.cli", "subscribers", "import", "nope", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 1
    assert "no newsletter" in again.stderr


async def test_the_importer_writes_batches_while_the_file_is_still_streaming(
    sessionmaker: Any, session: AsyncSession, newsletter: Newsletter
) -> None:
    from app.subscribers.importer import import_csv

    seen_when_requested: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b"email\n"
        for part in range(10):
            async with sessionmaker() as probe:
                seen_when_requested.append(await count(probe, Subscription))
            yield "".join(f"s{part}-{i}@example.com\n" for i in range(500)).encode()

    report = await import_csv(
        sessionmaker, chunks(), newsletter_id=newsletter.id, consent_text="test", batch_size=1000
    )
    assert report.created == 5000
    # Rows were committed batch by batch as the stream went on, not at the end.
    assert seen_when_requested[0] == 0
    assert seen_when_requested[-1] >= 4000
