"""subscription counts: per-status subscriber counts kept by triggers

The dashboard shows each newsletter's subscriptions per status. Counting them per page
view (`SELECT status, count(*) ... GROUP BY status`) cost 200-400 ms at a million
subscriptions on PostgreSQL 15, far over the 50 ms the dashboard allows (SPEC section
11). Now the database keeps the counts itself: `subscription_count` holds signed deltas
(newsletter, status, n), and triggers on `subscription` append one row per
(newsletter, status) a statement changes. The count is `SUM(n)` over a newsletter's rows,
exact whatever path changed the subscriptions (the API, the dashboard, an import, the
worker's bounces, an erasure, a CASCADE from a deleted subscriber).

Deltas are appended, never updated in place: a single counter row per (newsletter,
status) would be a hot row every concurrent signup waits on. On PostgreSQL the triggers
are statement-level with transition tables, so an import of 100,000 rows appends a
handful of rows (one INSERT ... SELECT ... GROUP BY per statement), not 100,000. SQLite
has neither statement triggers nor concurrent writers, so it uses row triggers. The
reader folds a newsletter's deltas into one row per status when they pile up
(app/subscribers/count_repository.py).

A deleted newsletter's count rows go with it (ON DELETE CASCADE); the DELETE triggers
skip a newsletter that no longer exists, so the cascade's own subscription deletes add
no rows pointing at it.

Measured on PostgreSQL 15, 1,000,000 subscriptions of one newsletter, on a 2-core
machine shared with other work (bench/status_counts.py, 50 reads each):
- the counts: the grouped COUNT(*) took 304 ms median, 518 ms p95 (282/332 in a second
  database); the counters' query 2.3 ms median, 8.4 ms p95, and status_counts in a whole
  unit of work (session, read, commit) 3.3 ms median, 7.6 ms p95.
- the insert trigger's cost: load_subscribers (1,000,000 subscribers, then their
  subscriptions in one INSERT ... SELECT, then ANALYZE) took 97.0 s at revision 0007 and
  98.5 s with the triggers; the subscription INSERT alone, run again in one database with
  the trigger disabled and enabled in turn, 47.6 and 46.3 s without, 45.9 and 48.7 s
  with: within the machine's noise (the transition table's GROUP BY is a fraction of a
  second next to writing a million rows and their indexes). Two earlier runs of the two
  databases, which overlapped other load, differed more (68.6 s against 79.2 s, 111 s
  against 137 s), so the loads bound the cost only loosely; the interleaved runs show
  none measurable.

The triggers are not in the models (app/models/audience.py declares the table only).
On SQLite a later batch migration that rebuilds `subscription` drops its triggers: such
a migration must create them again (see _SQLITE_TRIGGERS).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# PostgreSQL: one function per event. A transition table is a statement's rows, so each
# function groups them and appends one delta per (newsletter, status).
_PG_FUNCTIONS = {
    "insert": """
        INSERT INTO subscription_count (newsletter_id, status, n)
        SELECT newsletter_id, status, count(*) FROM new_rows GROUP BY newsletter_id, status;
    """,
    # An UPDATE trigger with transition tables cannot name columns (UPDATE OF ...), so it
    # runs for every UPDATE; an update that moves no subscription between (newsletter,
    # status) nets to zero and appends nothing.
    "update": """
        INSERT INTO subscription_count (newsletter_id, status, n)
        SELECT newsletter_id, status, sum(d) FROM (
            SELECT newsletter_id, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT newsletter_id, status, -1 AS d FROM old_rows
        ) AS moved
        GROUP BY newsletter_id, status
        HAVING sum(d) <> 0;
    """,
    # Rows of a newsletter being deleted are skipped: its count rows are deleted by the
    # cascade, and a row naming it would break the foreign key.
    "delete": """
        INSERT INTO subscription_count (newsletter_id, status, n)
        SELECT gone.newsletter_id, gone.status, -gone.n
        FROM (
            SELECT newsletter_id, status, count(*) AS n FROM old_rows
            GROUP BY newsletter_id, status
        ) AS gone
        JOIN newsletter ON newsletter.id = gone.newsletter_id;
    """,
    # TRUNCATE fires no DELETE trigger: an emptied table has no subscriptions to count.
    # (A TRUNCATE naming both tables, as the test suite's clean-up does, is fine too.)
    "truncate": "DELETE FROM subscription_count;",
}
_PG_REFERENCING = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
    "truncate": "",
}

_SQLITE_TRIGGERS = {
    "insert": """
        CREATE TRIGGER subscription_count_insert AFTER INSERT ON subscription
        BEGIN
            INSERT INTO subscription_count (newsletter_id, status, n)
            VALUES (NEW.newsletter_id, NEW.status, 1);
        END
    """,
    "update": """
        CREATE TRIGGER subscription_count_update
        AFTER UPDATE OF status, newsletter_id ON subscription
        WHEN OLD.status IS NOT NEW.status OR OLD.newsletter_id IS NOT NEW.newsletter_id
        BEGIN
            INSERT INTO subscription_count (newsletter_id, status, n)
            VALUES (OLD.newsletter_id, OLD.status, -1), (NEW.newsletter_id, NEW.status, 1);
        END
    """,
    "delete": """
        CREATE TRIGGER subscription_count_delete AFTER DELETE ON subscription
        BEGIN
            INSERT INTO subscription_count (newsletter_id, status, n)
            SELECT OLD.newsletter_id, OLD.status, -1
            WHERE EXISTS (SELECT 1 FROM newsletter WHERE id = OLD.newsletter_id);
        END
    """,
}


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _create_pg_triggers() -> None:
    for event, body in _PG_FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION subscription_count_{event}() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER subscription_count_{event} AFTER {event.upper()} ON subscription"
            f" {_PG_REFERENCING[event]} FOR EACH STATEMENT"
            f" EXECUTE FUNCTION subscription_count_{event}()"
        )


def upgrade() -> None:
    op.create_table(
        "subscription_count",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("newsletter_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["newsletter_id"],
            ["newsletter.id"],
            name=op.f("fk_subscription_count_newsletter_id_newsletter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_count")),
    )
    op.create_index("ix_subscription_count_newsletter_id", "subscription_count", ["newsletter_id"])
    # Backfill and triggers in one transaction (alembic runs each migration in one on
    # both databases), so no change falls between the count and the first trigger. On
    # PostgreSQL the table lock keeps concurrent writers out until the commit.
    if _postgresql():
        op.execute("LOCK TABLE subscription IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO subscription_count (newsletter_id, status, n)"
        " SELECT newsletter_id, status, count(*) FROM subscription"
        " GROUP BY newsletter_id, status"
    )
    if _postgresql():
        _create_pg_triggers()
    else:
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    if _postgresql():
        for event in _PG_FUNCTIONS:
            op.execute(f"DROP TRIGGER subscription_count_{event} ON subscription")
            op.execute(f"DROP FUNCTION subscription_count_{event}()")
    else:
        for event in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER subscription_count_{event}")
    op.drop_index("ix_subscription_count_newsletter_id", table_name="subscription_count")
    op.drop_table("subscription_count")
