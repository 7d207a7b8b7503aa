"""What skipping held-back recipient domains costs the claim (DOMAIN_RATES, SPEC section 13).

    .venv/bin/python -m bench.claim_caps [--queued 100000] [--kind postgresql] [--claims 30]

One fresh database with `--queued` queued deliveries of one issue, every other address
at gmail.test. A claim of 500 (the default batch) is run `--claims` times in each of
three cases, interleaved, each in a transaction that is rolled back so every claim sees
the same queue:

- `none_held`: no domain held back: PostgreSQL's usual claim statement;
- `half_held`: gmail.test held back, so the claim reads about 1,000 rows to lease 500;
- `all_held`: both domains held back, so the claim reads the whole queue and leases
  nothing: the most a claim costs while everything left waits for its domain.

Then the tail of such a send: the other half sent, every gmail.test delivery already
claimed once and due later (its turn). `tail_held` claims with gmail.test held back,
`tail_none_held` without: both lease nothing, and the second is what a claim cost
before, while every row left waited for a retry.

Prints JSON: the median and p95 of each case in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.delivery import claim_repository
from app.kit.clock import utcnow
from app.kit.db import UTCDateTime, create_engine, create_sessionmaker, unit_of_work
from app.models import Issue, Newsletter
from bench.dashboard import percentile
from bench.database import fresh_database, load_subscribers

BATCH = 500
CASES: dict[str, Sequence[str]] = {
    "none_held": (),
    "half_held": ("gmail.test",),
    "all_held": ("gmail.test", "example.net"),
}
TAIL_CASES: dict[str, Sequence[str]] = {
    "tail_none_held": (),
    "tail_held": ("gmail.test",),
}

_HALF_AT_GMAIL = "UPDATE subscriber SET email = replace(email, '@example.net', '@gmail.test')"
_QUEUE = """
INSERT INTO delivery (issue_id, subscription_id, status, attempts)
SELECT :issue, id, 'queued', 0 FROM subscription ORDER BY id
"""
_TAIL = """
UPDATE delivery SET
    status = CASE WHEN s.subscriber_id % 2 = 0 THEN 'queued' ELSE 'sent' END,
    next_attempt_at = :later
FROM subscription s WHERE s.id = delivery.subscription_id
"""


async def measure(kind: str, queued: int, claims: int) -> dict[str, Any]:
    async with fresh_database(kind, "claimcaps") as db:
        engine = create_engine(db.url)
        sessions = create_sessionmaker(engine)
        try:
            async with unit_of_work(sessions) as session:
                newsletter = Newsletter(
                    slug="caps", name="Caps", from_name="Caps", from_email="c@example.org"
                )
                session.add(newsletter)
                await session.flush()
                issue = Issue(newsletter_id=newsletter.id, number=1, subject="s", status="sending")
                session.add(issue)
                await session.flush()
            await load_subscribers(engine, newsletter_id=newsletter.id, n=queued, prefix="r")
            async with engine.begin() as conn:
                await conn.execute(text(_HALF_AT_GMAIL + " WHERE id % 2 = 0"))
                await conn.execute(text(_QUEUE), {"issue": issue.id})
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(
                    text("VACUUM ANALYZE" if kind == "postgresql" else "ANALYZE")
                )
            found = await _claims(sessions, issue.id, CASES, claims)
            async with engine.begin() as conn:
                later = utcnow() + timedelta(hours=1)
                await conn.execute(
                    text(_TAIL).bindparams(bindparam("later", type_=UTCDateTime)), {"later": later}
                )
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(
                    text("VACUUM ANALYZE" if kind == "postgresql" else "ANALYZE")
                )
            found |= await _claims(sessions, issue.id, TAIL_CASES, claims)
        finally:
            await engine.dispose()
    return {"kind": kind, "queued": queued, "claims": claims, **found}


async def _claims(
    sessions: async_sessionmaker[AsyncSession],
    issue_id: int,
    cases: dict[str, Sequence[str]],
    claims: int,
) -> dict[str, Any]:
    """`claims` claims of each case, interleaved, each rolled back; their times."""
    timings: dict[str, list[float]] = {case: [] for case in cases}
    leased: dict[str, int] = {}
    for _ in range(claims):
        for case, skip in cases.items():
            async with sessions() as session:
                started = time.perf_counter()
                rows = await claim_repository.claim_batch(
                    session,
                    owner="bench",
                    issue_ids=[issue_id],
                    after_id=0,
                    limit=BATCH,
                    lease_seconds=60,
                    now=utcnow(),
                    skip_domains=skip,
                )
                timings[case].append((time.perf_counter() - started) * 1000)
                leased[case] = len(rows)
                await session.rollback()
    return {
        case: {
            "leased": leased[case],
            "median_ms": round(statistics.median(values), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
        }
        for case, values in timings.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--kind", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--claims", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.kind, args.queued, args.claims)), indent=2))


if __name__ == "__main__":
    main()
