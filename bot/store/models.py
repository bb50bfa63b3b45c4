"""SQLAlchemy 2 models. Times in queue tables are epoch seconds (float): portable and cheap to compare."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class InboxRow(Base):
    """One callback (or pulled kf message), durable before WeCom gets its 200."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    app: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    route_key: Mapped[str] = mapped_column(String(128))
    partition_key: Mapped[str] = mapped_column(String(128))
    plaintext: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_routers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[float] = mapped_column(Float)
    available_at: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    processed_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_inbox_status_available", "status", "available_at"),
        Index("ix_inbox_partition", "partition_key", "id"),
    )


class OutboxRow(Base):
    """One WeCom call decided by a handler, sent at most once per idempotency key."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idem_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(255), default="")
    partition_key: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Float)
    available_at: Mapped[float] = mapped_column(Float)
    deadline_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_errcode: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_outbox_status_available", "status", "available_at"),
        Index("ix_outbox_partition", "partition_key", "id"),
    )


class TimerRow(Base):
    """A durable timer: fires once at `due_at`, unique by `key`."""

    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    fired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_timers_status_due", "status", "due_at"),)


class Customer(Base):
    """A WeChat user who is (or was) a customer of the brand."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    avatar: Mapped[str] = mapped_column(String(512), default="")
    gender: Mapped[int] = mapped_column(Integer, default=0)
    unionid: Mapped[str] = mapped_column(String(64), default="")
    customer_type: Mapped[int] = mapped_column(Integer, default=0)
    first_state: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    lead_score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_seen_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # Lifecycle (bot/lifecycle.py) and the SOP's manners (bot/policy.py).
    stage: Mapped[str] = mapped_column(String(16), default="", server_default="")
    stage_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_message_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    unsubscribed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Follow(Base):
    """A follow relation: one customer x one guide (a customer may follow several guides)."""

    __tablename__ = "follows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    userid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default="active")
    state: Mapped[str] = mapped_column(String(64), default="")
    remark: Mapped[str] = mapped_column(String(128), default="")
    add_way: Mapped[int] = mapped_column(Integer, default=0)
    added_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_reason: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("external_userid", "userid", name="uq_follow_pair"),
        Index("ix_follows_userid", "userid"),
    )


class TimelineEntry(Base):
    """One thing that happened to a customer, in order."""

    __tablename__ = "timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(512), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_timeline_customer", "external_userid", "occurred_at"),)


class KfCursor(Base):
    """Where kf/sync_msg left off, per kf account."""

    __tablename__ = "kf_cursors"

    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[float] = mapped_column(Float)


class ArchiveCursor(Base):
    """Where the chat archive (会话内容存档) pull left off: the last stored seq."""

    __tablename__ = "archive_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[float] = mapped_column(Float)


class ContentVersion(Base):
    """A published copy of the content library; the newest row is what replicas serve."""

    __tablename__ = "content_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(128), default="")
    published_at: Mapped[float] = mapped_column(Float)


class KfSession(Base):
    """The bot's view of one customer's 微信客服 session: who serves, misses, the 5-message window."""

    __tablename__ = "kf_sessions"

    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="bot")
    misses: Mapped[int] = mapped_column(Integer, default=0)
    last_customer_at: Mapped[float] = mapped_column(Float, default=0.0)
    sent_since_customer: Mapped[int] = mapped_column(Integer, default=0)
    handed_off_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)

    # The SOP runner looks sessions up by customer (any kf account); the key leads with open_kfid.
    __table_args__ = (Index("ix_kf_sessions_customer", "external_userid"),)


class Suggestion(Base):
    """A reply prepared for a guide (the sidebar shows it; the guide decides)."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    userid: Mapped[str] = mapped_column(String(64), default="")
    query: Mapped[str] = mapped_column(Text, default="")
    faq_id: Mapped[str] = mapped_column(String(64), default="")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    band: Mapped[str] = mapped_column(String(16), default="")
    reply: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_suggestions_customer", "external_userid", "created_at"),)


class HandoffRequest(Base):
    """A customer asked for a person (or the bot gave up); kept so nobody is forgotten."""

    __tablename__ = "handoff_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    open_kfid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    outside_hours: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")
    requested_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_handoff_status", "status", "requested_at"),)


class ChannelCode(Base):
    """A channel live code (渠道活码) as synced to WeCom: the config_id is the only handle WeCom gives."""

    __tablename__ = "channel_codes"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(30), unique=True)
    config_id: Mapped[str] = mapped_column(String(64), default="")
    qr_code: Mapped[str] = mapped_column(String(512), default="")
    spec_digest: Mapped[str] = mapped_column(String(64), default="")
    users: Mapped[list[Any]] = mapped_column(JSON, default=list)
    synced_at: Mapped[float] = mapped_column(Float)


class CorpTag(Base):
    """A WeCom corp tag (企业标签) by group and name, with the ids WeCom gave it."""

    __tablename__ = "corp_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_name: Mapped[str] = mapped_column(String(64))
    tag_name: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[str] = mapped_column(String(64), default="")
    tag_id: Mapped[str] = mapped_column(String(64), default="")
    deleted: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("group_name", "tag_name", name="uq_corp_tag_name"),)


class CustomerTag(Base):
    """A tag on a customer, with where it came from (a channel, a rule on a message, a guide)."""

    __tablename__ = "customer_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    tag_name: Mapped[str] = mapped_column(String(64))
    group_name: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(128), default="")
    source_key: Mapped[str] = mapped_column(String(255), default="")
    added_at: Mapped[float] = mapped_column(Float)
    removed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    synced_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (UniqueConstraint("external_userid", "tag_name", name="uq_customer_tag"),)


class CustomerAttribute(Base):
    """An attribute of a customer as what it means (a birth month, a due date), with its source."""

    __tablename__ = "customer_attributes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255))
    source_rule: Mapped[str] = mapped_column(String(128), default="")
    source_key: Mapped[str] = mapped_column(String(255), default="")
    source_text: Mapped[str] = mapped_column(String(255), default="")
    recorded_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("external_userid", "key", name="uq_customer_attribute"),)


class WelcomeAssignment(Base):
    """Which welcome script (and A/B variant) a new contact got; sticky per customer x guide."""

    __tablename__ = "welcome_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    userid: Mapped[str] = mapped_column(String(64))
    script_id: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(64), default="")
    welcome_code: Mapped[str] = mapped_column(String(255), default="")
    assigned_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("external_userid", "userid", name="uq_welcome_pair"),)


class GroupMember(Base):
    """A customer in a customer group (from groupchat/get after a member change)."""

    __tablename__ = "group_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[float] = mapped_column(Float)
    left_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        UniqueConstraint("chat_id", "external_userid", name="uq_group_member"),
        Index("ix_group_members_customer", "external_userid"),
    )


class Order(Base):
    """A purchase reported by the shop (POST /api/events/order), unique by the shop's order id."""

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    paid_at: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Enrollment(Base):
    """One run of a playbook for one customer; `due_at` is when the runner next looks at it.

    state: `due` (the step `step_id` is due at due_at), `waiting` (the step was sent; at due_at the
    wait for a reaction ends), `done`, `exited`. `iteration` counts the customer's runs of the
    playbook, so a second run has its own idempotency keys.
    """

    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    playbook_id: Mapped[str] = mapped_column(String(64))
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    enrolled_stage: Mapped[str] = mapped_column(String(16), default="")
    enrolled_at: Mapped[float] = mapped_column(Float)
    step_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="due")
    due_at: Mapped[float] = mapped_column(Float)
    step_reached_at: Mapped[float] = mapped_column(Float)
    reaction: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("external_userid", "playbook_id", "iteration", name="uq_enrollment_run"),
        Index(
            "ix_enrollments_live_due",
            "due_at",
            postgresql_where=text("state IN ('due', 'waiting')"),
            sqlite_where=text("state IN ('due', 'waiting')"),
        ),
    )


class SopLog(Base):
    """What the runner did with a step: sent (and by which route), deferred, skipped, exited."""

    __tablename__ = "sop_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[int] = mapped_column(Integer)
    external_userid: Mapped[str] = mapped_column(String(64))
    playbook_id: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    route: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(String(255), default="")
    marketing: Mapped[bool] = mapped_column(default=True)
    userid: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_sop_log_customer", "external_userid", "outcome", "at"),
        Index("ix_sop_log_guide", "userid", "at"),
    )


class ClickLink(Base):
    """A link in SOP content, sent as /r/<token> so a click is recorded before the redirect."""

    __tablename__ = "click_links"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(Integer)
    external_userid: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[float] = mapped_column(Float)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    first_clicked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class MassTask(Base):
    """A mass-send task (add_msg_template) made for one SOP step; the guide confirms it in WeCom."""

    __tablename__ = "mass_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idem_key: Mapped[str] = mapped_column(String(255), unique=True)
    msgid: Mapped[str] = mapped_column(String(128), default="")
    enrollment_id: Mapped[int] = mapped_column(Integer, default=0)
    external_userid: Mapped[str] = mapped_column(String(64))
    userid: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="created")
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    checked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_mass_tasks_guide", "userid", "created_at"),)
