"""Prometheus metrics of the delivery engine.

Two kinds:
- process counters and histograms, kept by the worker as it sends (visible on /metrics
  of the process that runs the worker, e.g. `broadsheet dev`, or scraped from each worker);
- gauges read from the database at scrape time (deliveries by state, queue depth,
  progress per issue in flight), so any API replica reports the whole system.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery import send_repository
from app.delivery.repository import PENDING

MESSAGES = Counter(
    "broadsheet_messages",
    "Messages handled by this worker process, by outcome.",
    ["outcome"],
)
SMTP_LATENCY = Histogram(
    "broadsheet_smtp_reply_seconds",
    "Time from starting a send to the SMTP server's final reply.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class RateMeter:
    """Messages per second over the last few seconds, for the send-rate gauge."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self.marks: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, count: int = 1) -> None:
        self.total += count
        now = time.monotonic()
        self.marks.append((now, self.total))
        while self.marks and now - self.marks[0][0] > self.window:
            self.marks.popleft()

    def rate(self) -> float:
        if len(self.marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


SENT_RATE = RateMeter()


class _RateCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "broadsheet_send_rate", "Messages accepted per second by this process (last 10 s)."
        )
        gauge.add_metric([], SENT_RATE.rate())
        yield gauge


_registered = False


def register_process_collectors() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(_RateCollector())
        _registered = True


async def render(session: AsyncSession) -> bytes:
    """The text exposition: process metrics plus gauges read from the database now."""
    register_process_collectors()
    db_registry = CollectorRegistry()
    pending = await send_repository.pending_counts(session)
    per_issue = await send_repository.in_flight_counts(session)

    class _Db(Collector):
        def collect(self) -> Iterable[GaugeMetricFamily]:
            states = GaugeMetricFamily(
                "broadsheet_deliveries",
                "Deliveries not yet final, by state (the whole queue).",
                labels=["state"],
            )
            for state in PENDING:
                states.add_metric([state], pending.get(state, 0))
            yield states
            depth = GaugeMetricFamily(
                "broadsheet_queue_depth", "Deliveries waiting to be sent (queued)."
            )
            depth.add_metric([], pending.get("queued", 0))
            yield depth
            progress = GaugeMetricFamily(
                "broadsheet_issue_deliveries",
                "Deliveries of each issue in flight (sending or paused), by state.",
                labels=["issue_id", "state"],
            )
            totals: dict[int, int] = {}
            final: dict[int, int] = {}
            for issue_id, state, count in per_issue:
                progress.add_metric([str(issue_id), state], int(count))
                totals[issue_id] = totals.get(issue_id, 0) + int(count)
                if state not in PENDING:
                    final[issue_id] = final.get(issue_id, 0) + int(count)
            yield progress
            ratio = GaugeMetricFamily(
                "broadsheet_issue_progress_ratio",
                "Share of an in-flight issue's deliveries that are final.",
                labels=["issue_id"],
            )
            for issue_id, total in totals.items():
                ratio.add_metric([str(issue_id)], final.get(issue_id, 0) / total if total else 1)
            yield ratio

    db_registry.register(_Db())
    return generate_latest(REGISTRY) + generate_latest(db_registry)
