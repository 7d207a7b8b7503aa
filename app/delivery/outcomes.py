"""What the delivery engine passes between its pieces: typed, immutable, no SQL names.

A `Job` is one claimed delivery with what its send needs; a `Result` is what became of
it, written later in a batch by the store. Only the store turns these into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a delivery's outcome does to its row (and the label of the messages counter)."""

    sent = "sent"  # final: with the SMTP reply and the Message-ID
    retry = "retry"  # back to the queue after a backoff, one attempt used
    failed = "failed"  # final: out of attempts, or the message could not be built
    bounced = "bounced"  # final: a 5xx for the recipient; the address is suppressed
    skipped = "skipped"  # final: not active or suppressed at send time; no attempt
    release = "release"  # back to the queue, no attempt used (shutdown, SMTP down, 421)
    policy = "policy"  # a 5.7.x blaming the sender: back to the queue, counted in a run


# The kinds that leave a row final: its issue may be done once they are written.
FINAL_KINDS = frozenset({Kind.sent, Kind.failed, Kind.bounced, Kind.skipped})


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery: to whom, of which issue, and the attempts used so far."""

    id: int
    issue_id: int
    subscription_id: int
    attempts: int
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one job.

    `retry_in` is the number of seconds from the write until the row is due again
    (retry, release and policy); `soft` marks a failure after 4xx replies from the
    recipient's side, counted as a soft bounce.
    """

    kind: Kind
    job: Job
    reply: str = ""
    message_id: str | None = None
    retry_in: float = 0.0
    soft: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """A freshly leased job, and why it must not be sent (None when it may)."""

    job: Job
    skip: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One leased transactional message (confirmation, test send): ready bytes."""

    id: int
    mail_from: str
    rcpt_to: str
    message: bytes
    attempts: int
