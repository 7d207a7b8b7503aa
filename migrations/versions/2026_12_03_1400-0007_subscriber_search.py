"""subscriber search: trigram indexes for substring search, events by subscription

The dashboard's subscriber list searches a part of an address or a name
(`... ILIKE '%jane%'`). A B-tree cannot answer a pattern with a leading wildcard, so at
a million subscribers every search read the whole table. PostgreSQL's pg_trgm GIN
indexes answer it from the pattern's trigrams. They are PostgreSQL only: SQLite has no
such index and keeps scanning with LIKE, which is fine at a single machine's sizes.

A subscriber's page lists the events of one subscription; `event` had no index on
`subscription_id` (erasure's delete by subscription read the whole table too). That
index is plain and made on both databases.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_index("ix_event_subscription_id", "event", ["subscription_id"], unique=False)
    if not _postgresql():
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in ("email", "name"):
        op.create_index(
            f"ix_subscriber_{column}_trgm",
            "subscriber",
            [column],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    if _postgresql():
        op.drop_index("ix_subscriber_name_trgm", table_name="subscriber")
        op.drop_index("ix_subscriber_email_trgm", table_name="subscriber")
        # The extension stays: other objects may use it, and it holds no data.
    op.drop_index("ix_event_subscription_id", table_name="event")
