"""Adaptive connection counts (SPEC section 13): grow while it pays, back off on push-back.

The tuner's rules on a simulated relay (its rate as a function of the connection count,
time moved by hand), then a real worker against aiosmtpd: a slow relay makes the pool
grow, and one that refuses connections beyond a limit makes it shrink back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.adaptive import HOLD_SECONDS, ConnectionTuner, is_busy_signal
from app.delivery.classify import Outcome, Verdict
from app.settings import Settings
from tests.delivery.conftest import running_worker, wait_until
from tests.delivery.faulty_smtp import FaultyServer
from tests.factories import seed

SENT = Outcome(Verdict.sent, 250, "2.0.0 ok")


def simulate(
    tuner: ConnectionTuner,
    rate_of: Callable[[int], float],
    seconds: float,
    *,
    waiting: bool = True,
    start: float = 0.0,
    refuse_above: int | None = None,
) -> list[int]:
    """Feed the tuner answers at `rate_of(size)` per second; the sizes it went through."""
    now, step, sizes = start, 0.05, [tuner.size]
    while now < start + seconds:
        now += step
        for _ in range(round(rate_of(tuner.size) * step)):
            tuner.observe(SENT)
        if refuse_above is not None and tuner.size > refuse_above:
            tuner.observe(Outcome(Verdict.unreachable, 421, "4.7.0 Too many connections"))
        size = tuner.tick(now, waiting=waiting)
        if size is not None:
            sizes.append(size)
    return sizes


def test_a_latency_bound_relay_gets_connections_up_to_the_ceiling() -> None:
    tuner = ConnectionTuner(8, 32, now=0.0)
    sizes = simulate(tuner, lambda n: 25.0 * n, 20)  # 40 ms a message per connection
    assert sizes[0] == 8
    assert sizes == sorted(sizes)
    assert tuner.size == 32


def test_growth_that_does_not_pay_is_undone_and_held() -> None:
    tuner = ConnectionTuner(8, 32, now=0.0)
    sizes = simulate(tuner, lambda n: 1000.0, 10)  # CPU-bound: more connections, same rate
    assert sizes[:3] == [8, 16, 8]
    assert tuner.size == 8
    assert tuner.hold_until > 10 - HOLD_SECONDS
    # It tries again once the hold is over.
    again = simulate(tuner, lambda n: 1000.0, HOLD_SECONDS + 5, start=10.0)
    assert again[:2] == [8, 10]  # then in quarter steps


def test_no_growth_while_no_mail_waits_for_a_connection() -> None:
    tuner = ConnectionTuner(8, 32, now=0.0)
    assert simulate(tuner, lambda n: 25.0 * n, 10, waiting=False) == [8]


def test_push_back_shrinks_at_once_and_holds_growth() -> None:
    tuner = ConnectionTuner(8, 32, now=0.0)
    sizes = simulate(tuner, lambda n: 25.0 * min(n, 12), 30, refuse_above=12)
    assert max(sizes) <= 16
    assert tuner.size <= 12
    assert any(b < a for a, b in zip(sizes, sizes[1:], strict=False))


def test_the_ceiling_never_goes_below_the_start() -> None:
    assert ConnectionTuner(8, 4, now=0.0).ceiling == 8


@pytest.mark.parametrize(
    ("outcome", "busy"),
    [
        (Outcome(Verdict.unreachable, 421, "4.3.2 closing"), True),
        (Outcome(Verdict.unreachable, None, "SMTP unreachable", before_send=True), True),
        (Outcome(Verdict.retry, 452, "4.7.0 too many connections from your host"), True),
        (Outcome(Verdict.retry, 451, "4.3.0 try later"), False),
        (Outcome(Verdict.bounce, 550, "5.1.1 too many recipients? no: no such user"), False),
        (SENT, False),
    ],
)
def test_busy_signals(outcome: Outcome, busy: bool) -> None:
    assert is_busy_signal(outcome) is busy


# -- a real worker -------------------------------------------------------------------------


class SessionCounter:
    """Counts the sessions open on the server, and the most at once; beyond `limit`, a
    new session gets 421 "too many connections" (as Postfix's smtpd_client_connection
    limits and most relays answer)."""

    def __init__(self, limit: int) -> None:
        self.servers: list[Any] = []
        self.most = 0
        self.limit = limit

    def open(self) -> int:
        self.servers = [
            s for s in self.servers if s.transport is not None and not s.transport.is_closing()
        ]
        return len(self.servers)

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        if self.open() >= self.limit:
            return ["421 4.7.0 Too many connections, try later"]
        self.servers.append(server)
        self.most = max(self.most, len(self.servers))
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses


async def test_a_slow_relay_gets_more_connections_and_a_full_one_fewer(
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = SessionCounter(limit=6)
    sink = faulty.sink
    sink.accept_delay = 0.05  # a relay far away: round trips, not CPU, bound the send
    sink.handle_EHLO = counter.handle_EHLO  # type: ignore[method-assign]
    _, issue_id, emails = await seed(sessionmaker, 600)
    caplog.set_level(logging.INFO, logger="broadsheet.delivery")
    settings = faulty_settings(smtp_pool_size=2, smtp_max_connections=12)
    async with running_worker(settings, engine):
        response = await client.post(f"/api/v1/issues/{issue_id}/send", headers=editor_headers)
        assert response.status_code == 202, response.text

        async def all_arrived() -> bool:
            return sink.count() >= len(emails)

        await wait_until(all_arrived, timeout=120)
    changes = [r.getMessage() for r in caplog.records if "SMTP connections" in r.getMessage()]
    assert any("2 -> 4 " in change for change in changes), changes
    assert any("pushed back" in change for change in changes), changes
    assert counter.most == 6
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(emails)
