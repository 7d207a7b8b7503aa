"""Dashboard pages with 1,000,000 subscribers in PostgreSQL: server time per page (SPEC 11).

    .venv/bin/python -m bench.dashboard [--subscribers 1000000] [--requests 60]

The app runs in this process behind httpx's ASGI transport, so a request's time is the
server's work (routing, session, queries, template) without a network. Each page is
asked for `--requests` times after a warm-up; the table gives the median and p95 in
milliseconds against the target of 50 ms p95. Results: bench/results/latest-dashboard.md
and a JSON file beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from app.accounts import service as accounts
from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.main import create_app
from app.models import Role
from app.settings import load_settings
from bench import content
from bench.database import fresh_database, load_subscribers

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 50.0
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
PASSWORD = "bench password 0123"
BASE = "http://127.0.0.1:8000"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def _timed(client: AsyncClient, path: str, requests: int) -> dict[str, Any]:
    for _ in range(5):
        response = await client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
    return {
        "path": path,
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 0.95), 2),
        "requests": requests,
    }


async def _seed(client: AsyncClient, engine: Any, subscribers: int) -> dict[str, Any]:
    """A newsletter with `subscribers` active readers and 30 issues; a dashboard admin."""
    body = {
        "slug": "harbour",
        "name": content.NEWSLETTER_NAME,
        "from_name": content.FROM_NAME,
        "from_email": content.FROM_EMAIL,
        "postal_address": content.POSTAL_ADDRESS,
        "double_opt_in": False,
        "track_opens": True,
        "track_clicks": True,
    }
    response = await client.post("/api/v1/newsletters", json=body)
    response.raise_for_status()
    async with engine.connect() as conn:
        newsletter_id = (
            await conn.execute(text("SELECT id FROM newsletter WHERE slug = 'harbour'"))
        ).scalar_one()
    await load_subscribers(engine, newsletter_id=newsletter_id, n=subscribers, prefix="r-")
    for _ in range(30):
        issue = await client.post(
            "/api/v1/newsletters/harbour/issues", json=content.issue_payload()
        )
        issue.raise_for_status()
    async with unit_of_work(create_sessionmaker(engine)) as session:
        await accounts.create_user(
            session, email="bench@example.org", role=Role.admin, password=PASSWORD
        )
    async with engine.connect() as conn:
        ids = (await conn.execute(text("SELECT min(id), max(id) FROM subscription"))).one()
        issue_id = (await conn.execute(text("SELECT max(id) FROM issue"))).scalar_one()
    return {"first_subscription": ids[0], "last_subscription": ids[1], "issue": issue_id}


async def _log_in(client: AsyncClient) -> None:
    response = await client.post(
        "/admin/login",
        data={"email": "bench@example.org", "password": PASSWORD, "next": "/admin"},
        headers={"Origin": BASE},
    )
    if response.status_code != 303:
        raise RuntimeError(f"login answered {response.status_code}")


def pages(seeded: dict[str, Any]) -> dict[str, str]:
    subscribers = "/admin/newsletters/harbour/subscribers"
    late = (
        seeded["first_subscription"]
        + (seeded["last_subscription"] - seeded["first_subscription"]) * 9 // 10
    )
    return {
        "home": "/admin",
        "issues list": "/admin/newsletters/harbour/issues",
        "subscribers, first page": subscribers,
        "subscribers, search": f"{subscribers}?q=r-77777",
        "subscribers, late keyset page": f"{subscribers}?after={late}",
        "a subscriber": f"{subscribers}/{late}",
        "issue editor": f"/admin/issues/{seeded['issue']}",
    }


async def measure(subscribers: int, requests: int) -> dict[str, Any]:
    async with fresh_database("postgresql", "dashboard") as db:
        settings = load_settings(
            database_url=db.url,
            secret_key="bench-secret-0123456789abcdef",
            admin_api_key=ADMIN_KEY,
            base_url=BASE,
            _env_file=None,
        )
        engine = create_engine(db.url)
        app = create_app(settings, engine=engine)
        try:
            async with AsyncClient(
                transport=ASGITransport(app=app),
                base_url=BASE,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                timeout=600,
            ) as client:
                started = time.perf_counter()
                seeded = await _seed(client, engine, subscribers)
                setup_s = time.perf_counter() - started
            async with AsyncClient(
                transport=ASGITransport(app=app), base_url=BASE, timeout=600
            ) as browser:
                await _log_in(browser)
                rows = {}
                for name, path in pages(seeded).items():
                    rows[name] = await _timed(browser, path, requests)
                    print(f"{name:32} p95 {rows[name]['p95_ms']:7.2f} ms", flush=True)
        finally:
            await engine.dispose()
    return {"subscribers": subscribers, "setup_s": round(setup_s, 1), "pages": rows}


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Dashboard pages, {result['subscribers']:,} subscribers in PostgreSQL, "
        f"{next(iter(result['pages'].values()))['requests']} requests each "
        f"(`python -m bench.dashboard`, {date.today().isoformat()}).",
        "",
        "| page | median ms | p95 ms | target p95 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in result["pages"].items():
        verdict = "met" if row["p95_ms"] < TARGET_MS else "missed"
        lines.append(
            f"| {name} | {row['median_ms']:.1f} | {row['p95_ms']:.1f} | "
            f"{TARGET_MS:.0f} ms ({verdict}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    result = asyncio.run(measure(args.subscribers, args.requests))
    RESULTS.mkdir(exist_ok=True)
    stamp = date.today().isoformat()
    (RESULTS / f"{stamp}-dashboard.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "latest-dashboard.md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
