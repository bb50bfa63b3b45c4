"""lifecycle stages and SOP runs

Customers get a stage, the time of their last message and an unsubscribe mark; new tables hold
playbook runs (enrollments) and what the runner did (sop_log), tracked links, orders, mass-send
tasks and customer-group membership.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "click_links",
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("first_clicked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("playbook_id", sa.String(length=64), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("enrolled_stage", sa.String(length=16), nullable=False),
        sa.Column("enrolled_at", sa.Float(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("step_reached_at", sa.Float(), nullable=False),
        sa.Column("reaction", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_userid", "playbook_id", "iteration", name="uq_enrollment_run"),
    )
    op.create_index("ix_enrollments_customer", "enrollments", ["external_userid", "state"], unique=False)
    op.create_index("ix_enrollments_due", "enrollments", ["state", "due_at"], unique=False)
    op.create_table(
        "group_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("left_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "external_userid", name="uq_group_member"),
    )
    op.create_index("ix_group_members_customer", "group_members", ["external_userid"], unique=False)
    op.create_table(
        "mass_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idem_key", sa.String(length=255), nullable=False),
        sa.Column("msgid", sa.String(length=128), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idem_key"),
    )
    op.create_index("ix_mass_tasks_guide", "mass_tasks", ["userid", "created_at"], unique=False)
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("paid_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index(op.f("ix_orders_external_userid"), "orders", ["external_userid"], unique=False)
    op.create_table(
        "sop_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("playbook_id", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sop_log_customer", "sop_log", ["external_userid", "outcome", "at"], unique=False)
    op.create_index(op.f("ix_sop_log_enrollment_id"), "sop_log", ["enrollment_id"], unique=False)
    op.add_column("customers", sa.Column("stage", sa.String(length=16), server_default="", nullable=False))
    op.add_column("customers", sa.Column("stage_since", sa.Float(), nullable=True))
    op.add_column("customers", sa.Column("last_message_at", sa.Float(), nullable=True))
    op.add_column("customers", sa.Column("unsubscribed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "unsubscribed_at")
    op.drop_column("customers", "last_message_at")
    op.drop_column("customers", "stage_since")
    op.drop_column("customers", "stage")
    op.drop_index(op.f("ix_sop_log_enrollment_id"), table_name="sop_log")
    op.drop_index("ix_sop_log_customer", table_name="sop_log")
    op.drop_table("sop_log")
    op.drop_index(op.f("ix_orders_external_userid"), table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_mass_tasks_guide", table_name="mass_tasks")
    op.drop_table("mass_tasks")
    op.drop_index("ix_group_members_customer", table_name="group_members")
    op.drop_table("group_members")
    op.drop_index("ix_enrollments_due", table_name="enrollments")
    op.drop_index("ix_enrollments_customer", table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_table("click_links")
