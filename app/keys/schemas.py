from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.kit.text import NonEmptyLine
from app.models import Role


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: NonEmptyLine = Field(max_length=200)
    role: Role = Role.editor


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The key itself; shown this once and never again.")
