"""An issue's states and the one way to move between them (SPEC section 2).

`draft -> ready -> scheduled -> sending -> sent`; `sending <-> paused`; any unsent state
`-> cancelled`; a sent issue goes back to sending when its failed deliveries are resent.
Every move is one conditional UPDATE (`... WHERE status IN (the states it may leave)`),
so two requests, a worker and a scheduler pass racing for one issue cannot both move
it: the loser's UPDATE matches no row and it is told so. The API, the scheduler and the
delivery engine all move issues through `move`; nothing else writes `issue.status`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.issues import repository
from app.kit.errors import Conflict
from app.models import Issue, IssueStatus

_UNSENT = frozenset({IssueStatus.draft, IssueStatus.ready, IssueStatus.scheduled})


class Action(StrEnum):
    mark_ready = "mark ready"
    unmark_ready = "move back to draft"
    schedule = "schedule"
    unschedule = "unschedule"
    drop_schedule = "return to draft"  # a one-off missed, or refused to start
    send = "send"
    pause = "pause"
    resume = "resume"
    finish = "finish"
    resend = "resend"
    cancel = "cancel"


# action -> (the states it may leave, the state it enters)
TRANSITIONS: dict[Action, tuple[frozenset[IssueStatus], IssueStatus]] = {
    Action.mark_ready: (frozenset({IssueStatus.draft}), IssueStatus.ready),
    Action.unmark_ready: (frozenset({IssueStatus.ready}), IssueStatus.draft),
    Action.schedule: (_UNSENT, IssueStatus.scheduled),
    Action.unschedule: (frozenset({IssueStatus.scheduled, IssueStatus.draft}), IssueStatus.draft),
    Action.drop_schedule: (frozenset({IssueStatus.scheduled}), IssueStatus.draft),
    Action.send: (_UNSENT, IssueStatus.sending),
    Action.pause: (frozenset({IssueStatus.sending}), IssueStatus.paused),
    Action.resume: (frozenset({IssueStatus.paused}), IssueStatus.sending),
    Action.finish: (frozenset({IssueStatus.sending}), IssueStatus.sent),
    Action.resend: (frozenset({IssueStatus.sent}), IssueStatus.sending),
    Action.cancel: (_UNSENT | {IssueStatus.sending, IssueStatus.paused}, IssueStatus.cancelled),
}

EDITABLE = frozenset({IssueStatus.draft, IssueStatus.ready})


def allowed_from(action: Action) -> frozenset[IssueStatus]:
    return TRANSITIONS[action][0]


async def move(
    session: AsyncSession,
    issue_id: int,
    action: Action,
    *,
    if_scheduled_at: datetime | None = None,
    **values: Any,
) -> bool:
    """Apply `action` (with the other columns in `values`) if the issue is in a state it
    may leave, and, given `if_scheduled_at`, still scheduled for that time (an editor may
    have moved it meanwhile). True when the issue moved."""
    sources, target = TRANSITIONS[action]
    return await repository.move_status(
        session,
        issue_id,
        [state.value for state in sources],
        {"status": target.value, **values},
        scheduled_at=if_scheduled_at,
    )


async def move_or_conflict(
    session: AsyncSession, issue: Issue, action: Action, **values: Any
) -> None:
    """`move`, else a 409 naming the state the issue is in; updates `issue` in place."""
    if not await move(session, issue.id, action, **values):
        status = await repository.current_status(session, issue.id)
        sources = ", ".join(sorted(state.value for state in allowed_from(action)))
        raise Conflict(f"cannot {action} an issue that is {status} (allowed from: {sources})")
    issue.status = TRANSITIONS[action][1].value
    for key, value in values.items():
        setattr(issue, key, value)
