"""The installation itself: API keys and the installation id."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    CheckConstraint,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, BigId, UTCDateTime
from app.models.base import check_in
from app.models.states import (
    Role,
)


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (check_in("role", Role),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Installation(Base):
    """This installation's id, one row made by the migrations (SPEC section 6).

    Every delivery's Message-ID carries a part derived from it, so two installations
    with the same BASE_URL never send the same Message-ID. Not the secret key: that
    rotates, and the development key is the same in every dev install.
    """

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)
    ONLY: ClassVar[int] = 1

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
