"""outbox partition index

The outbox claim skips a row while an earlier row of its partition is in flight; without an index
on (partition_key, id) that check scans the table once per candidate, which made claims slower as
the outbox grew (PostgreSQL fell behind at 200 adds/s).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_partition", "outbox", ["partition_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_partition", table_name="outbox")
