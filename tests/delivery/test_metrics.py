"""GET /metrics in Prometheus text format."""

from __future__ import annotations

from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import seed


async def test_metrics_show_queue_depth_and_progress_of_an_issue_in_flight(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    editor_headers: dict[str, str],
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 7)
    started = await client.post(f"/api/v1/issues/{issue_id}/send", headers=editor_headers)
    assert started.status_code == 202
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("broadsheet_queue_depth", ())] == 7
    assert samples[("broadsheet_deliveries", (("state", "queued"),))] == 7
    key = ("broadsheet_issue_deliveries", (("issue_id", str(issue_id)), ("state", "queued")))
    assert samples[key] == 7
    assert samples[("broadsheet_issue_progress_ratio", (("issue_id", str(issue_id)),))] == 0
    assert any(name.startswith("broadsheet_smtp_reply_seconds") for name, _ in samples)
