"""subscription.confirmed_user_agent: the browser that pressed Confirm

A confirmation is now a POST from the confirm page's button (a GET only shows the
page, because mail scanners open links). The consent proof records who confirmed: the
ip was already kept, the user agent of that request is kept beside it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: both databases add it in place (SQLite's
    # ALTER TABLE ADD COLUMN needs no table rebuild).
    op.add_column("subscription", sa.Column("confirmed_user_agent", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscription") as batch_op:
        batch_op.drop_column("confirmed_user_agent")
