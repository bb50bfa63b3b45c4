"""A customer's profile: channel, guides, tags and attributes with their sources, lead score, timeline.

`load_profile` reads it (read-only, one session); `to_json` is what `GET /api/customers/{id}` returns
and `render` what `siyu customer show` prints. Attributes are stored as what they mean (a birth
month), so the age shown is computed for `today`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot import numerals
from bot.clock import SHANGHAI
from bot.store.db import Sessions
from bot.store.models import (
    ChannelCode,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Follow,
    SopLog,
    TimelineEntry,
)

TIMELINE_LIMIT = 50

ATTRIBUTE_LABELS = {
    "baby_birth_month": "宝宝出生月",
    "baby_age_months": "宝宝月龄",
    "due_date": "预产期",
    "city": "城市",
    "budget_yuan": "预算（元）",
}
# Stored key -> the derived key reported as of today (months since the stored YYYY-MM).
AGE_KEYS = {"baby_birth_month": "baby_age_months"}


@dataclass(frozen=True)
class FollowView:
    """A guide who follows (or followed) the customer."""

    userid: str
    status: str
    state: str
    added_at: float
    ended_at: float | None
    ended_reason: str


@dataclass(frozen=True)
class TagView:
    """A tag with where it came from."""

    tag: str
    group: str
    source: str
    source_key: str
    added_at: float
    synced: bool


@dataclass(frozen=True)
class AttributeView:
    """An attribute as stored (its meaning), its derived value as of today, and its source."""

    key: str
    label: str
    value: str
    derived: dict[str, Any]
    source_rule: str
    source_key: str
    source_text: str
    source_message: str
    recorded_at: float


@dataclass(frozen=True)
class TimelineView:
    """One timeline entry."""

    kind: str
    summary: str
    occurred_at: float
    data: dict[str, Any]


@dataclass(frozen=True)
class Profile:
    """Everything Siyu knows about one customer."""

    external_userid: str
    name: str
    status: str
    first_state: str
    channel: str
    first_seen_at: float
    lead_score: int
    follows: tuple[FollowView, ...]
    tags: tuple[TagView, ...]
    attributes: tuple[AttributeView, ...]
    timeline: tuple[TimelineView, ...]
    as_of: str


def derive(key: str, value: str, today: dt.date) -> dict[str, Any]:
    """Values that follow from a stored attribute on `today` (a birth month gives the age in months)."""
    reported = AGE_KEYS.get(key)
    if reported is None:
        return {}
    try:
        return {reported: numerals.months_since(value, today)}
    except ValueError:
        return {}


async def load_profile(
    sessions: Sessions, external_userid: str, today: dt.date, *, limit: int = TIMELINE_LIMIT
) -> Profile | None:
    """The customer's profile as of `today`; None when Siyu does not know the customer."""
    async with sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_userid == external_userid))
        if customer is None:
            return None
        channel = ""
        if customer.first_state:
            channel = (
                await session.scalar(select(ChannelCode.key).where(ChannelCode.state == customer.first_state))
                or ""
            )
        follows = await session.scalars(
            select(Follow).where(Follow.external_userid == external_userid).order_by(Follow.added_at)
        )
        tags = await session.scalars(
            select(CustomerTag)
            .where(CustomerTag.external_userid == external_userid, CustomerTag.removed_at.is_(None))
            .order_by(CustomerTag.added_at, CustomerTag.id)
        )
        attributes = list(
            await session.scalars(
                select(CustomerAttribute)
                .where(CustomerAttribute.external_userid == external_userid)
                .order_by(CustomerAttribute.key)
            )
        )
        # The message each attribute came from: the timeline keeps it under the message's dedup key.
        keys = {a.source_key for a in attributes if a.source_key}
        messages: dict[str, str] = {}
        if keys:
            rows = await session.execute(
                select(TimelineEntry.source_key, TimelineEntry.data).where(TimelineEntry.source_key.in_(keys))
            )
            messages = {key: str((data or {}).get("text", "")) for key, data in rows}
        timeline = [
            TimelineView(e.kind, e.summary, e.occurred_at, dict(e.data or {}))
            for e in await session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.external_userid == external_userid)
                .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
                .limit(limit)
            )
        ]
        # SOP steps live in sop_log (the runner writes each fact once); the timeline shows them too.
        sop = await session.scalars(
            select(SopLog)
            .where(SopLog.external_userid == external_userid, SopLog.outcome.in_(SOP_SHOWN))
            .order_by(SopLog.at.desc(), SopLog.id.desc())
            .limit(limit)
        )
        timeline.extend(sop_entry(row) for row in sop)
        timeline.sort(key=lambda e: e.occurred_at, reverse=True)
        return Profile(
            external_userid=customer.external_userid,
            name=customer.name,
            status=customer.status,
            first_state=customer.first_state,
            channel=channel,
            first_seen_at=customer.first_seen_at,
            lead_score=customer.lead_score,
            follows=tuple(
                FollowView(f.userid, f.status, f.state, f.added_at, f.ended_at, f.ended_reason)
                for f in follows
            ),
            tags=tuple(
                TagView(t.tag_name, t.group_name, t.source, t.source_key, t.added_at, t.synced_at is not None)
                for t in tags
            ),
            attributes=tuple(
                AttributeView(
                    a.key,
                    ATTRIBUTE_LABELS.get(a.key, a.key),
                    a.value,
                    derive(a.key, a.value, today),
                    a.source_rule,
                    a.source_key,
                    a.source_text,
                    messages.get(a.source_key, ""),
                    a.recorded_at,
                )
                for a in attributes
            ),
            timeline=tuple(timeline[:limit]),
            as_of=today.isoformat(),
        )


SOP_SHOWN = ("sent", "deferred", "skipped", "exited", "failed")
"""SOP log outcomes a guide reading the timeline wants (not branches or the end of a run)."""
ROUTE_NAMES = {"kf": "微信客服", "mass_task": "导购群发任务", "guide_notify": "提醒导购发送"}
OUTCOME_NAMES = {"deferred": "顺延", "skipped": "跳过", "exited": "结束", "failed": "出错停止"}


def sop_entry(row: SopLog) -> TimelineView:
    """A timeline entry for one SOP log line."""
    step = f"SOP「{row.playbook_id}」{row.step_id}"
    if row.outcome == "sent":
        summary = f"{step} 已发出（{ROUTE_NAMES.get(row.route, row.route)}）"
    else:
        summary = f"{step} {OUTCOME_NAMES.get(row.outcome, row.outcome)}：{row.detail}"
    data = {"playbook": row.playbook_id, "step": row.step_id, "reason": row.reason, "route": row.route}
    return TimelineView(f"sop_{row.outcome}", summary, row.at, data)


def to_json(profile: Profile) -> dict[str, Any]:
    """The profile as JSON-friendly data (the API's answer)."""
    return dataclasses.asdict(profile)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, SHANGHAI).strftime("%Y-%m-%d %H:%M")


def render(profile: Profile) -> str:
    """The profile as text for the terminal."""
    lines = [f"客户 {profile.external_userid}" + (f"（{profile.name}）" if profile.name else "")]
    lines.append(f"  状态: {profile.status}    首次出现: {_when(profile.first_seen_at)}")
    channel = profile.channel or "-"
    lines.append(f"  渠道: {channel}" + (f"（state {profile.first_state}）" if profile.first_state else ""))
    lines.append(f"  线索分: {profile.lead_score}")
    lines.append("导购:")
    for f in profile.follows or ():
        ended = f"，结束 {_when(f.ended_at)}（{f.ended_reason}）" if f.ended_at is not None else ""
        lines.append(f"  {f.userid}  {f.status}  添加 {_when(f.added_at)}{ended}")
    if not profile.follows:
        lines.append("  （无）")
    lines.append("标签:")
    for t in profile.tags:
        synced = "已同步" if t.synced else "未同步"
        lines.append(f"  {t.group}/{t.tag}  来源 {t.source or '-'} · {t.source_key or '-'} · {synced}")
    if not profile.tags:
        lines.append("  （无）")
    lines.append(f"属性（截至 {profile.as_of}）:")
    for a in profile.attributes:
        derived = "".join(
            f"，{ATTRIBUTE_LABELS.get(k, k)} {v}{' 个月' if k.endswith('_months') else ''}"
            for k, v in a.derived.items()
        )
        lines.append(f"  {a.label}: {a.value}{derived}")
        said = f"「{a.source_message}」" if a.source_message else f"「{a.source_text}」"
        lines.append(f"    来源 规则 {a.source_rule or '-'} · 消息 {a.source_key or '-'} · {said}")
    if not profile.attributes:
        lines.append("  （无）")
    lines.append("时间线（最新在前）:")
    for e in profile.timeline:
        lines.append(f"  {_when(e.occurred_at)}  {e.summary}")
    if not profile.timeline:
        lines.append("  （无）")
    return "\n".join(lines)
