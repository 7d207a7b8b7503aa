"""delivery: partial index on (issue_id, id) of queued rows, for "is anything of this issue left?"

The outcome writer asks after every batch of outcomes whether the issue has finished.
Answered with NOT EXISTS over the issue's queued or sending rows, PostgreSQL scanned the
table from its start (an anti join it expects to stop at once, since nearly every row
is queued when the statistics are taken), and read every row already sent on the way:
80 ms a call by 40,000 sent out of 1,000,000, most of the database's CPU per message. The
newest queued row of the issue, read backwards through this index, answers in one probe
while the send runs. It holds only queued rows: a claim moves a row out of it and adds
nothing, so it is paid once per recipient when a send is enqueued.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_delivery_issue_id_queued",
        "delivery",
        ["issue_id", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_issue_id_queued", table_name="delivery")
