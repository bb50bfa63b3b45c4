"""SOP lookups: kf sessions by customer; drop the enrollments index uq_enrollment_run already covers

The SOP runner loads the kf sessions of a batch's customers by external_userid, and the key of
kf_sessions leads with open_kfid: PostgreSQL scanned the whole table for every batch. Lookups of
a customer's runs (enrolment, reactions) are served by uq_enrollment_run, which leads with
external_userid, so (external_userid, state) only cost an index write on every step.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_kf_sessions_customer", "kf_sessions", ["external_userid"])
    op.drop_index("ix_enrollments_customer", table_name="enrollments")


def downgrade() -> None:
    op.create_index("ix_enrollments_customer", "enrollments", ["external_userid", "state"])
    op.drop_index("ix_kf_sessions_customer", table_name="kf_sessions")
