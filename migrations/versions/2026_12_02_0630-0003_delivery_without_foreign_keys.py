"""delivery: no foreign keys, and an index on in-flight leases instead of (status, next_attempt_at)

Every constraint and index of `delivery` is paid once per recipient when a send is
enqueued. PostgreSQL checks a foreign key with a trigger per inserted row: the two took
about half of enqueueing 100,000 recipients. The (status, next_attempt_at) index covered
every row of every send; leases are now found through a partial index on the rows in
flight, which holds a few hundred at a time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_constraint("fk_delivery_issue_id_issue", type_="foreignkey")
        batch_op.drop_constraint("fk_delivery_subscription_id_subscription", type_="foreignkey")
        batch_op.drop_index("ix_delivery_status_next_attempt_at")
    op.create_index(
        "ix_delivery_sending_lease_expires_at",
        "delivery",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_sending_lease_expires_at", table_name="delivery")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.create_index(
            "ix_delivery_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_delivery_subscription_id_subscription",
            "subscription",
            ["subscription_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_delivery_issue_id_issue", "issue", ["issue_id"], ["id"], ondelete="CASCADE"
        )
