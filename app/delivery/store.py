"""The delivery engine's database side, as the engine sees it: the `Store` protocol.

The SQL implementation is `app.delivery.sqlstore.SqlStore`; the engine's unit tests use
an in-memory one. Every method is one short unit of work of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.delivery.outcomes import Claim, Kind, OutboxItem, Result
from app.models import Issue, Newsletter


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """What one batch of outcomes says about an issue's run of 5.7.x refusals.

    `refusals` new ones after the last success of the batch (or of all of it when
    `reset` is false, then they add to the stored run); `reset`: a message of the issue
    was sent in the batch, so the stored run starts again from `refusals`.
    """

    refusals: int
    reset: bool
    last_reply: str


class Store(Protocol):
    async def listen(self, wake: Callable[[], None]) -> bool:
        """Call `wake` whenever a send may have started; False when only polling works."""
        ...

    async def unlisten(self) -> None: ...

    async def installation(self) -> str:
        """The installation's Message-ID tag (read once per process)."""
        ...

    async def issue_statuses(self, also: Collection[int]) -> dict[int, str]:
        """Every issue that is sending, and the status of the issues in `also`."""
        ...

    async def load_issue(self, issue_id: int) -> tuple[Issue, Newsletter] | None:
        """An issue with its newsletter, to prepare its message (None when gone)."""
        ...

    async def pause_issue(self, issue_id: int, reason: str) -> bool:
        """Pause a sending issue, saying why; False when it was not sending."""
        ...

    async def claim(
        self,
        owner: str,
        issue_ids: Sequence[int],
        *,
        after_id: int,
        limit: int,
        lease_seconds: float,
        skip_domains: Sequence[str] = (),
    ) -> list[Claim]:
        """Lease up to `limit` due queued deliveries of these issues, above `after_id`, by id.

        Deliveries to addresses in `skip_domains` (recipient domains over their cap) stay
        queued.
        """
        ...

    async def renew_leases(self, owner: str, lease_seconds: float) -> None: ...

    async def reclaim_expired(self, owner: str) -> int:
        """Give back other workers' expired leases (never `owner`'s own); how many."""
        ...

    async def write_outcomes(
        self, owner: str, results: Sequence[Result], policy_runs: Mapping[int, PolicyRun]
    ) -> dict[int, int]:
        """Write a batch in one transaction, only to rows `owner` still leases.

        Bounces are recorded with it; the answer is each issue's run of policy
        refusals after the batch, for the issues in `policy_runs`.
        """
        ...

    async def finish_issues(self, issue_ids: Collection[int]) -> int:
        """Issues with nothing queued or sending left become `sent`; how many did."""
        ...


class OutboxStore(Protocol):
    """The outbox's database side (transactional mail, stored as ready bytes)."""

    async def claim_due(self, *, limit: int, lease_seconds: float) -> list[OutboxItem]:
        """Lease up to `limit` messages: queued and due, or left leased by a dead worker."""
        ...

    async def record(
        self, items: Sequence[OutboxItem], kind: Kind, reply: str, retry_in: float
    ) -> None:
        """Write one outcome for these messages (retried while the database is away)."""
        ...
