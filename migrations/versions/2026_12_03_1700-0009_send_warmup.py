"""send warmup: WARMUP's daily count per From domain

WARMUP (SPEC section 13) caps the messages a new sending domain sends each UTC day,
counted from its first send. Every worker takes from the same count, so it lives here:
one row per From domain with the day of its first send (which picks the day's cap), the
day being counted and the messages taken that day. A worker locks the row (FOR UPDATE
on PostgreSQL) for the moment it takes a handful of messages' worth.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_warmup",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_send_warmup")),
    )


def downgrade() -> None:
    op.drop_table("send_warmup")
