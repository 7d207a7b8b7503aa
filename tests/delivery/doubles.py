"""Unit-level doubles of the engine's two protocols: an in-memory `Store` and a
`Transport` that answers scripted SMTP outcomes. Only the engine's unit tests use them;
every other delivery test runs on the real databases and a real SMTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from app.delivery.classify import Outcome, Verdict
from app.delivery.outcomes import Claim, Job, Kind, OutboxItem, Result
from app.delivery.store import PolicyRun
from app.delivery.transport import Outgoing, Transport, TransportFactory
from app.models import Issue, Newsletter
from app.rendering.prepared import freeze_issue
from app.settings import Settings
from tests.rendering import samples

SENT = Outcome(Verdict.sent, 250, "250 2.0.0 OK")


@dataclass
class Row:
    id: int
    issue_id: int
    email: str
    status: str = "queued"
    attempts: int = 0
    owner: str | None = None
    due: float = 0.0
    reply: str = ""
    message_id: str | None = None
    waits: list[float] = field(default_factory=list)  # retry_in of each requeue


class MemoryStore:
    """Deliveries of one issue (id 1) to `readers` addresses, kept in dicts."""

    def __init__(self, settings: Settings, readers: int) -> None:
        self.rows = {i: Row(i, 1, f"reader{i}@example.com") for i in range(1, readers + 1)}
        self.issues: dict[int, str] = {1: "sending"}
        self.pause_reasons: dict[int, str] = {}
        self.refusals: dict[int, int] = {}
        self.suppressed: set[str] = set()
        self.bounces: list[tuple[str, str]] = []
        self.batches: list[int] = []
        self.loaded = _issue(settings)

    async def listen(self, wake: Callable[[], None]) -> bool:
        return False

    async def unlisten(self) -> None:
        pass

    async def installation(self) -> str:
        return "unittest00"

    async def issue_statuses(self, also: Collection[int]) -> dict[int, str]:
        return dict(self.issues)

    async def load_issue(self, issue_id: int) -> tuple[Issue, Newsletter] | None:
        return self.loaded if issue_id == 1 else None

    async def pause_issue(self, issue_id: int, reason: str) -> bool:
        if self.issues.get(issue_id) != "sending":
            return False
        self.issues[issue_id] = "paused"
        self.pause_reasons[issue_id] = reason
        return True

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
        now = time.monotonic()
        due = [
            row
            for row in self.rows.values()
            if row.status == "queued"
            and row.issue_id in issue_ids
            and row.id > after_id
            and row.due <= now
            and row.email.rpartition("@")[2] not in skip_domains
        ][:limit]
        claims = []
        for row in due:
            row.status, row.owner = "sending", owner
            job = Job(row.id, row.issue_id, row.id, row.attempts, row.email, "Reader")
            skip = "address suppressed" if row.email in self.suppressed else None
            claims.append(Claim(job, skip))
        return claims

    async def renew_leases(self, owner: str, lease_seconds: float) -> None:
        pass

    async def reclaim_expired(self, owner: str) -> int:
        return 0

    async def write_outcomes(
        self, owner: str, results: Sequence[Result], policy_runs: Mapping[int, PolicyRun]
    ) -> dict[int, int]:
        self.batches.append(len(results))
        now = time.monotonic()
        for r in results:
            row = self.rows[r.job.id]
            assert row.owner == owner, "an outcome for a row this worker does not lease"
            row.owner = None
            row.reply = r.reply
            if r.kind in (Kind.retry, Kind.release, Kind.policy):
                row.status, row.due = "queued", now + r.retry_in
                row.waits.append(r.retry_in)
                row.attempts += r.kind is Kind.retry
                continue
            row.status = {"bounced": "bounced", "failed": "failed", "skipped": "skipped"}.get(
                r.kind.value, "sent"
            )
            row.attempts += r.kind is not Kind.skipped
            row.message_id = r.message_id
            if r.kind is Kind.bounced or (r.kind is Kind.failed and r.soft):
                self.bounces.append((row.email, "hard" if r.kind is Kind.bounced else "soft"))
                if r.kind is Kind.bounced:
                    self.suppressed.add(row.email)
        for issue_id, run in policy_runs.items():
            before = 0 if run.reset else self.refusals.get(issue_id, 0)
            self.refusals[issue_id] = before + run.refusals
        return {issue_id: self.refusals[issue_id] for issue_id in policy_runs}

    async def finish_issues(self, issue_ids: Collection[int]) -> int:
        done = 0
        for issue_id in issue_ids:
            pending = any(
                r.issue_id == issue_id and r.status in ("queued", "sending")
                for r in self.rows.values()
            )
            if self.issues.get(issue_id) == "sending" and not pending:
                self.issues[issue_id] = "sent"
                done += 1
        return done


def _issue(settings: Settings) -> tuple[Issue, Newsletter]:
    """A frozen issue built in memory (the real rendering, no database)."""
    newsletter = samples.newsletter(double_opt_in=False, timezone="UTC", template="default")
    issue = samples.issue(id=1, number=1, status="sending")
    story = samples.story(0, issue_id=1, body="Body.", url=None, image_url=None)
    freeze_issue(issue, newsletter, [story], settings)
    return issue, newsletter


class ScriptedTransport:
    """Answers each recipient's scripted outcomes in turn, then 250 OK."""

    def __init__(
        self, script: dict[str, list[Outcome]], sends: list[tuple[str, bytes]], delay: float
    ) -> None:
        self.script = script
        self.sends = sends
        self.delay = delay
        self.closed = False

    async def send(
        self, envelope_from: str, recipient: str, message: bytes, *, then: Outgoing | None = None
    ) -> Outcome:
        await asyncio.sleep(self.delay)  # a round trip: other tasks run meanwhile
        self.sends.append((recipient, message))
        answers = self.script.get(recipient)
        return answers.pop(0) if answers else SENT

    async def close(self) -> None:
        self.closed = True


class Script:
    """One script shared by every transport the engine opens, and what they were sent."""

    def __init__(
        self, answers: dict[str, list[Outcome]] | None = None, *, delay: float = 0.0
    ) -> None:
        self.delay = delay
        self.answers = {f"{name}@example.com": list(a) for name, a in (answers or {}).items()}
        self.sends: list[tuple[str, bytes]] = []
        self.transports: list[ScriptedTransport] = []

    @property
    def factory(self) -> TransportFactory:
        def make() -> Transport:
            transport = ScriptedTransport(self.answers, self.sends, self.delay)
            self.transports.append(transport)
            return transport

        return make

    def sent_to(self, email: str) -> int:
        return sum(1 for rcpt, _ in self.sends if rcpt == email)


class MemoryOutbox:
    """The outbox's store in memory: every outcome recorded, per message id."""

    def __init__(self, count: int) -> None:
        self.items = [
            OutboxItem(i, "news@example.org", f"reader{i}@example.com", b"Subject: hi\r\n\r\n", 0)
            for i in range(1, count + 1)
        ]
        self.claimed = False
        self.outcomes: dict[int, list[tuple[Kind, str, float]]] = {}

    async def claim_due(self, *, limit: int, lease_seconds: float) -> list[OutboxItem]:
        if self.claimed:
            return []
        self.claimed = True
        return self.items[:limit]

    async def record(
        self, items: Sequence[OutboxItem], kind: Kind, reply: str, retry_in: float
    ) -> None:
        for item in items:
            self.outcomes.setdefault(item.id, []).append((kind, reply, retry_in))
