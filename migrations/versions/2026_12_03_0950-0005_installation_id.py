"""installation: one row holding this installation's id, made here once

Every delivery's Message-ID carries a part derived from it (SPEC section 6), so two
installations with the same BASE_URL never reuse a Message-ID. The id is random and
made once by this migration; the secret key could not serve, as it rotates and every
development install shares the same one. Downgrading drops the table and its id: a
later upgrade makes a new one, so Message-IDs made after that differ from earlier ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:50:00
"""

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_installation_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        # UTCDateTime keeps naive UTC on SQLite.
        now = now.replace(tzinfo=None)
    op.bulk_insert(installation, [{"id": 1, "value": secrets.token_hex(16), "created_at": now}])


def downgrade() -> None:
    op.drop_table("installation")
