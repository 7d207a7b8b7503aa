"""The newsletters API accepts exactly the schedules the scheduler can run."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Newsletter
from tests.factories import newsletter_body


@pytest.mark.parametrize(
    "cron", ["R 9 * * *", "0 0 30 2 *", "0 9 * *", "61 9 * * MON", "@fortnightly"]
)
async def test_schedules_the_scheduler_cannot_run_are_refused(
    client: AsyncClient, editor_headers: dict[str, str], cron: str
) -> None:
    response = await client.post(
        "/api/v1/newsletters", json=newsletter_body(schedule_cron=cron), headers=editor_headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "schedule_cron"


async def test_changing_the_schedule_starts_it_from_now(
    client: AsyncClient, editor_headers: dict[str, str], session: AsyncSession
) -> None:
    created = await client.post(
        "/api/v1/newsletters",
        json=newsletter_body(schedule_cron="0 9 * * MON"),
        headers=editor_headers,
    )
    assert created.status_code == 201
    changed = await client.patch(
        "/api/v1/newsletters/weekly",
        json={"schedule_cron": "0 9 * * *", "timezone": "Europe/Berlin"},
        headers=editor_headers,
    )
    assert changed.status_code == 200
    row = (await session.execute(select(Newsletter))).scalar_one()
    assert row.schedule_checked_at is not None
    assert row.schedule_checked_at >= row.created_at
