"""SOP runner indexes: sop_log by guide, live runs by due time

The manners count the tasks each guide was given today for every batch the SOP runner claims;
without an index on (userid, at) that count scanned the whole log. The runner claims live runs
(due or waiting) in due order: a partial index on due_at over live runs serves that directly,
where the (state, due_at) index had PostgreSQL sort every due run of both states per batch.
The partial index replaces (state, due_at), and the index on sop_log.enrollment_id served no
query: both cost index writes on every step.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

LIVE = sa.text("state IN ('due', 'waiting')")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sop_log_guide", "sop_log", ["userid", "at"])
    op.create_index(
        "ix_enrollments_live_due", "enrollments", ["due_at"], postgresql_where=LIVE, sqlite_where=LIVE
    )
    op.drop_index("ix_sop_log_enrollment_id", table_name="sop_log")
    op.drop_index("ix_enrollments_due", table_name="enrollments")


def downgrade() -> None:
    op.create_index("ix_enrollments_due", "enrollments", ["state", "due_at"])
    op.create_index("ix_sop_log_enrollment_id", "sop_log", ["enrollment_id"])
    op.drop_index("ix_enrollments_live_due", table_name="enrollments")
    op.drop_index("ix_sop_log_guide", table_name="sop_log")
