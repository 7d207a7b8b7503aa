"""The states and kinds stored as short strings (CHECK constraints, not database enums)."""

from __future__ import annotations

from enum import StrEnum


class SubscriptionStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class IssueStatus(StrEnum):
    draft = "draft"
    ready = "ready"
    scheduled = "scheduled"
    sending = "sending"
    paused = "paused"
    sent = "sent"
    cancelled = "cancelled"


class DeliveryStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    bounced = "bounced"
    skipped = "skipped"
    cancelled = "cancelled"


class OutboxStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class EventKind(StrEnum):
    open = "open"
    click = "click"
    bounce = "bounce"
    soft_bounce = "soft_bounce"
    complaint = "complaint"
    unsubscribe = "unsubscribe"


class Role(StrEnum):
    admin = "admin"
    editor = "editor"


class SuppressionReason(StrEnum):
    hard_bounce = "hard_bounce"
    soft_bounces = "soft_bounces"
    complaint = "complaint"
    erasure = "erasure"
    manual = "manual"


class TickOutcome(StrEnum):
    sent = "sent"
    skipped = "skipped"
    missed = "missed"
