"""sop_log index by guide

The manners count the tasks each guide was given today for every batch the SOP runner claims;
without an index on (userid, at) that count scanned the whole log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sop_log_guide", "sop_log", ["userid", "at"])


def downgrade() -> None:
    op.drop_index("ix_sop_log_guide", table_name="sop_log")
