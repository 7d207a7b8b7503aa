from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class SendStarted(BaseModel):
    status: str
    recipients: int


class IssueState(BaseModel):
    id: int
    status: str
    pause_reason: str | None = None


class CancelResult(IssueState):
    cancelled: int


class Requeued(BaseModel):
    requeued: int
    status: str


class IssueStats(BaseModel):
    status: str
    recipients: int
    queued: int
    sending: int
    sent: int
    failed: int
    bounced: int
    skipped: int
    cancelled: int
    opens: int
    unique_opens: int
    clicks: int
    unique_clicks: int
    unsubscribes: int
    bounces: int
    complaints: int
    started_at: datetime | None
    finished_at: datetime | None
    pause_reason: str | None


class DeliveryItem(BaseModel):
    id: int
    email: str
    status: str
    attempts: int
    last_reply: str | None
    message_id: str | None
    sent_at: datetime | None
