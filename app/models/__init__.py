"""Every table of Broadsheet, in one metadata (SPEC section 2).

States are short strings guarded by CHECK constraints rather than database enums, so
that the same migrations run on SQLite and PostgreSQL and adding a state is a plain
constraint change. The tables live in modules by subject; import them from here.
"""

from app.models.accounts import AuditEvent, User, UserSession
from app.models.audience import (
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionCount,
    Suppression,
)
from app.models.base import TimestampMixin
from app.models.issues import Issue, ScheduleTick, Story
from app.models.sending import (
    Delivery,
    Event,
    IdempotencyRecord,
    OutboxMessage,
    RateCounter,
    SendQuota,
    SendWarmup,
)
from app.models.states import (
    DeliveryStatus,
    EventKind,
    IssueStatus,
    OutboxStatus,
    Role,
    SubscriptionStatus,
    SuppressionReason,
    TickOutcome,
)
from app.models.system import ApiKey, Installation

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Delivery",
    "DeliveryStatus",
    "Event",
    "EventKind",
    "IdempotencyRecord",
    "Installation",
    "Issue",
    "IssueStatus",
    "Newsletter",
    "OutboxMessage",
    "OutboxStatus",
    "RateCounter",
    "Role",
    "ScheduleTick",
    "SendQuota",
    "SendWarmup",
    "Story",
    "Subscriber",
    "Subscription",
    "SubscriptionCount",
    "SubscriptionStatus",
    "Suppression",
    "SuppressionReason",
    "TickOutcome",
    "TimestampMixin",
    "User",
    "UserSession",
]
