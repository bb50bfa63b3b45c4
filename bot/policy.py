"""Manners: the one place every proactive send is checked (quiet hours, caps, opt-out, budgets).

`decide(proposal, history, settings, now)` answers Send, Defer(until, reason) or Skip(reason);
reasons are stable snake_case codes (`Reason`) with a Chinese `detail` for the timeline. The
engine supplies `SendHistory`, counted over the windows `windows(now, settings)` gives (local
calendar day, ISO week from Monday, calendar month, all in `settings.timezone`), and calls
`decide` again at a deferral's `until`: `until` is the earliest moment the send could pass.

Order of the checks:

1. `unsubscribed` skips marketing. Non-marketing (an after-sales service notice) still goes.
2. Called before the step is due, only the due time is answered (`not_due`, moved out of quiet
   hours); caps are counted when it is due.
3. `kf` route: WeCom allows at most 5 messages within 48 h of the customer's last kf message
   (wecom-api.md §8.3); outside that window, or when a deferral would end outside it, the send is
   skipped (`kf_window`) so the engine can pick another route.
4. Deferrals: quiet hours (→ their end), the customer's day cap (→ the next day's first allowed
   time), week cap (→ next Monday's), the guide's daily task budget (→ the next day's, for routes
   that give the guide a task: `mass_task`, `guide_notify`). The latest of these wins; on a tie
   the cap is named, not the quiet hours. Customer caps count every proactive send (the engine
   counts all routes and playbooks), but only marketing is held back by them: a service notice
   is never delayed a day because a promotion went out this morning.
5. WeCom's per-customer mass-send cap (wecom-api.md §7; `mass_task` only), checked last, at the
   moment the send would really go: when this period's budget is spent the send is **skipped**
   (`wecom_mass_cap`), not deferred. A deferral to the next month would deliver stale content
   weeks late and pile every capped customer onto the 1st; a task created anyway only ends as
   status 3 after the guide confirmed it; and the engine can still reach her by `kf` or
   `guide_notify`, which the cap does not cover. Because it is checked after the deferrals, a send
   deferred into a new period (quiet hours across midnight, a week cap to Monday) is judged by the
   new period's count, not skipped early.

`next_allowed(when, settings)` moves a time out of quiet hours; `classify_unsubscribe(text,
settings)` recognises opt-out and opt-in messages; `opt_reply` turns one into the new flag and the
single confirmation to send.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, ClassVar, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

Route = Literal["mass_task", "kf", "guide_notify"]
MassCap = Literal["monthly_days", "4_per_month", "7_per_week", "1_per_day"]
Reason = Literal[
    "quiet_hours",
    "daily_cap",
    "weekly_cap",
    "wecom_mass_cap",
    "guide_budget",
    "unsubscribed",
    "kf_window",
    "not_due",
]
OptKind = Literal["unsubscribe", "resubscribe"]

KF_WINDOW = dt.timedelta(hours=48)
KF_MESSAGES = 5
_GUIDE_TASK_ROUTES = frozenset(("mass_task", "guide_notify"))
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")

# ------------------------------------------------------------------------------------------ settings


def _hhmm(value: str) -> str:
    if not _HHMM.fullmatch(value):
        raise ValueError(f"{value!r} must be a time of day like 21:30")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
TimeOfDay = Annotated[str, AfterValidator(_hhmm)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuietHours(_Model):
    """No proactive sends from `start` (inclusive) to `end` (exclusive); may wrap midnight; equal = none."""

    start: TimeOfDay = "21:30"
    end: TimeOfDay = "08:30"

    def minutes(self) -> tuple[int, int]:
        """(start, end) as minutes after local midnight."""
        return _minutes(self.start, self.end)


class PolicyTexts(_Model):
    """What the customer is told when her opt-out changes (sent once, on the change)."""

    unsubscribed: Phrase = (
        "好的，已为您退订，之后不会再给您推送活动和资讯了。订单、售后等服务通知仍会照常发送。"
        "如需恢复，回复“订阅”即可。"
    )
    resubscribed: Phrase = "好的，已为您恢复推送，有新品和活动会第一时间告诉您～如需退订，回复“退订”即可。"


class PolicySettings(_Model):
    """Manners for proactive sends; every limit is per customer unless named per guide."""

    quiet_hours: QuietHours = QuietHours()
    timezone: Annotated[str, AfterValidator(_timezone)] = "Asia/Shanghai"
    customer_daily_cap: Annotated[int, Field(ge=1)] = 1
    customer_weekly_cap: Annotated[int, Field(ge=1)] = 3
    wecom_mass_cap: MassCap = "monthly_days"
    guide_daily_tasks: Annotated[int, Field(ge=1)] = 200
    unsubscribe_phrases: tuple[Phrase, ...] = (
        "退订",
        "TD",
        "T退订",
        "别发了",
        "别再发了",
        "不要发了",
        "不要再发了",
        "别给我发了",
        "不要给我发了",
        "取消订阅",
        "取消推送",
        "不要推送",
        "拒收",
    )
    resubscribe_phrases: tuple[Phrase, ...] = (
        "订阅",
        "重新订阅",
        "恢复订阅",
        "恢复推送",
        "取消退订",
        "继续推送",
    )
    texts: PolicyTexts = PolicyTexts()

    @model_validator(mode="after")
    def _phrases_distinct(self) -> PolicySettings:
        unsub = {normalize_reply(p): p for p in self.unsubscribe_phrases}
        for phrase in self.resubscribe_phrases:
            if normalize_reply(phrase) in unsub:
                raise ValueError(f"{phrase!r} is both an unsubscribe and a resubscribe phrase")
        for phrase in (*self.unsubscribe_phrases, *self.resubscribe_phrases):
            if not normalize_reply(phrase):
                raise ValueError(f"phrase {phrase!r} is only punctuation")
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        """The timezone counting windows and quiet hours are in."""
        return ZoneInfo(self.timezone)

    @cached_property
    def phrase_table(self) -> dict[str, OptKind]:
        """Normalised phrase → what it asks for."""
        table: dict[str, OptKind] = {normalize_reply(p): "resubscribe" for p in self.resubscribe_phrases}
        table.update({normalize_reply(p): "unsubscribe" for p in self.unsubscribe_phrases})
        return table


# -------------------------------------------------------------------------------------- quiet hours


@functools.lru_cache(maxsize=64)
def _minutes(start: str, end: str) -> tuple[int, int]:
    """("21:30", "08:30") -> (1290, 510); cached, since every decision asks."""
    (h1, m1), (h2, m2) = (map(int, t.split(":")) for t in (start, end))
    return h1 * 60 + m1, h2 * 60 + m2


def is_quiet(when: dt.datetime, settings: PolicySettings) -> bool:
    """True when `when` (aware) falls inside quiet hours, judged in the policy timezone."""
    local = _local(when, settings)
    start, end = settings.quiet_hours.minutes()
    minute = local.hour * 60 + local.minute  # 21:30:59 is still 21:30; seconds never reopen a window
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def next_allowed(when: dt.datetime, settings: PolicySettings) -> dt.datetime:
    """`when` in the policy timezone, moved to the end of quiet hours if it falls inside them."""
    local = _local(when, settings)
    if not is_quiet(local, settings):
        return local
    start, end = settings.quiet_hours.minutes()
    day = local.date()
    if start > end and local.hour * 60 + local.minute >= start:
        day += dt.timedelta(days=1)  # evening part of a window that wraps midnight: ends tomorrow
    return _at(day, end, settings)


# ---------------------------------------------------------------------------------- counting windows


@dataclass(frozen=True)
class CountWindows:
    """Half-open [start, end) ranges the engine counts sends in, local to the policy timezone."""

    day: tuple[dt.datetime, dt.datetime]
    week: tuple[dt.datetime, dt.datetime]
    month: tuple[dt.datetime, dt.datetime]

    @functools.cached_property
    def starts(self) -> tuple[float, float, float]:
        """Epoch seconds of the day's, week's and month's start (counting compares floats)."""
        return self.day[0].timestamp(), self.week[0].timestamp(), self.month[0].timestamp()


def windows(now: dt.datetime, settings: PolicySettings) -> CountWindows:
    """The local calendar day, ISO week (Monday first) and calendar month containing `now`."""
    return _windows(_local(now, settings).date(), settings.timezone)


@functools.lru_cache(maxsize=32)
def _windows(today: dt.date, timezone: str) -> CountWindows:
    """Windows of a local day; cached, since every decision of a batch shares its day."""
    zone = ZoneInfo(timezone)

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0, 0), zone)

    monday = today - dt.timedelta(days=today.weekday())
    first = today.replace(day=1)
    next_first = (first + dt.timedelta(days=32)).replace(day=1)
    return CountWindows(
        day=(midnight(today), midnight(today + dt.timedelta(days=1))),
        week=(midnight(monday), midnight(monday + dt.timedelta(days=7))),
        month=(midnight(first), midnight(next_first)),
    )


def mass_cap_limit(now: dt.datetime, settings: PolicySettings) -> tuple[int, Literal["day", "week", "month"]]:
    """How many WeCom mass messages one customer may receive in which period at `now`."""
    cap = settings.wecom_mass_cap
    if cap == "1_per_day":
        return 1, "day"
    if cap == "7_per_week":
        return 7, "week"
    if cap == "4_per_month":
        return 4, "month"
    local = _local(now, settings)
    return _days_in_month(local.year, local.month), "month"


@functools.lru_cache(maxsize=16)
def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


# ------------------------------------------------------------------------------------------ decision


@dataclass(frozen=True)
class Proposal:
    """One proactive send the engine wants to make."""

    customer: str  # external_userid
    guide: str  # userid of the guide whose task or notice it becomes
    playbook: str
    step: str
    marketing: bool  # False only for service notices (after-sales, orders): they ignore opt-out and caps
    route: Route
    due_at: dt.datetime


class SendHistory(NamedTuple):
    """Counts the engine reads before a send, over `windows(now, settings)`.

    A NamedTuple, like the runner's other per-step records: built several times for every step of
    a batch, where a frozen dataclass's __init__ costs more than the decision that reads it.
    """

    sent_today: int = 0  # proactive sends to this customer, every playbook and route
    sent_this_week: int = 0
    mass_today: int = 0  # WeCom mass messages she received (ours and the guides' own)
    mass_this_week: int = 0
    mass_this_month: int = 0
    guide_tasks_today: int = 0  # tasks and notices created today for the proposal's guide
    unsubscribed: bool = False
    kf_last_customer_message_at: dt.datetime | None = None  # her last message to kf (route kf)
    kf_sent_since: int = 0  # our kf messages to her since that message


@dataclass(frozen=True)
class Send:
    """Send it now."""

    kind: ClassVar[str] = "send"


@dataclass(frozen=True)
class Defer:
    """Not now: ask again at `until`; `also` names other rules that held it back too."""

    until: dt.datetime
    reason: Reason
    detail: str
    also: tuple[Reason, ...] = ()
    kind: ClassVar[str] = "defer"


@dataclass(frozen=True)
class Skip:
    """Do not send this step at all."""

    reason: Reason
    detail: str
    kind: ClassVar[str] = "skip"


Decision = Send | Defer | Skip


@dataclass(order=True)
class _Hold:
    until: dt.datetime
    rank: int  # on equal `until`, the higher rank names the deferral
    reason: Reason = field(compare=False)
    detail: str = field(compare=False)


def decide(proposal: Proposal, history: SendHistory, settings: PolicySettings, now: dt.datetime) -> Decision:
    """Whether `proposal` may go at `now`: Send, Defer(until, reason) or Skip(reason)."""
    now = _local(now, settings)
    if proposal.marketing and history.unsubscribed:
        return Skip("unsubscribed", "客户已退订，营销内容不再推送")
    due = _local(proposal.due_at, settings)
    if due > now:
        until = next_allowed(due, settings)
        if until > due:
            quiet = settings.quiet_hours
            detail = (
                f"计划 {_fmt(due)} 发送，落在免打扰时段（{quiet.start}–{quiet.end}），顺延到 {_fmt(until)}"
            )
            return _kf_guard(proposal, history, Defer(until, "quiet_hours", detail), now)
        return _kf_guard(proposal, history, Defer(until, "not_due", f"计划 {_fmt(due)} 发送"), now)

    holds = _holds(proposal, history, settings, now)
    if holds:
        holds.sort()
        top = holds[-1]
        also = tuple(h.reason for h in holds[:-1])
        return _kf_guard(proposal, history, Defer(top.until, top.reason, top.detail, also), now)

    if proposal.route == "mass_task":
        limit, period = mass_cap_limit(now, settings)
        received = {"day": history.mass_today, "week": history.mass_this_week}.get(
            period, history.mass_this_month
        )
        if received >= limit:
            name = {"day": "今天", "week": "本周", "month": "本月"}[period]
            return Skip(
                "wecom_mass_cap",
                f"{name}已收到 {received} 条企业群发（企业微信上限 {limit} 条），本步不再群发",
            )
    return _kf_guard(proposal, history, Send(), now)


def _holds(
    proposal: Proposal, history: SendHistory, settings: PolicySettings, now: dt.datetime
) -> list[_Hold]:
    holds: list[_Hold] = []
    if is_quiet(now, settings):
        until = next_allowed(now, settings)
        quiet = settings.quiet_hours
        holds.append(
            _Hold(until, 0, "quiet_hours", f"免打扰时段（{quiet.start}–{quiet.end}），顺延到 {_fmt(until)}")
        )
    if not (
        history.sent_today >= settings.customer_daily_cap
        or history.sent_this_week >= settings.customer_weekly_cap
        or history.guide_tasks_today >= settings.guide_daily_tasks
    ):
        return holds  # the common case: no cap reached, so no need to work out tomorrow
    tomorrow = next_allowed(windows(now, settings).day[1], settings)
    if proposal.route in _GUIDE_TASK_ROUTES and history.guide_tasks_today >= settings.guide_daily_tasks:
        holds.append(
            _Hold(
                tomorrow,
                1,
                "guide_budget",
                f"导购今天已有 {history.guide_tasks_today} 个任务（上限 {settings.guide_daily_tasks}），"
                f"顺延到 {_fmt(tomorrow)}",
            )
        )
    if proposal.marketing and history.sent_today >= settings.customer_daily_cap:
        holds.append(
            _Hold(
                tomorrow,
                2,
                "daily_cap",
                f"客户今天已收到 {history.sent_today} 条推送（上限 {settings.customer_daily_cap}），"
                f"顺延到 {_fmt(tomorrow)}",
            )
        )
    if proposal.marketing and history.sent_this_week >= settings.customer_weekly_cap:
        monday = next_allowed(windows(now, settings).week[1], settings)
        holds.append(
            _Hold(
                monday,
                3,
                "weekly_cap",
                f"客户本周已收到 {history.sent_this_week} 条推送（上限 {settings.customer_weekly_cap}），"
                f"顺延到 {_fmt(monday)}",
            )
        )
    return holds


def _kf_guard(proposal: Proposal, history: SendHistory, decision: Decision, now: dt.datetime) -> Decision:
    """A kf send must land inside the 48 h / 5-message window of her last kf message (§8.3)."""
    if proposal.route != "kf" or isinstance(decision, Skip):
        return decision
    last = history.kf_last_customer_message_at
    if last is None:
        return Skip("kf_window", "客户没有在客服会话中发过消息，无法通过客服发送")
    if history.kf_sent_since >= KF_MESSAGES:
        return Skip(
            "kf_window", f"客户上次发言后已发 {history.kf_sent_since} 条客服消息（上限 {KF_MESSAGES} 条）"
        )
    closes = last + KF_WINDOW
    at = decision.until if isinstance(decision, Defer) else now
    if at >= closes:
        return Skip("kf_window", f"客服会话 48 小时窗口已于 {_fmt(closes)} 关闭，无法通过客服发送")
    return decision


# ------------------------------------------------------------------------------------------ opt-out

# Padding a customer may put around a phrase of two or more Chinese characters ("麻烦别发了谢谢").
# Short Latin phrases ("TD") only count as the whole message: inside a sentence they mean something else.
_LEAD = (
    "请",
    "麻烦",
    "麻烦你",
    "麻烦您",
    "拜托",
    "求求你",
    "求你",
    "以后",
    "以后都",
    "你们",
    "我要",
    "帮我",
    "我",
)
_TRAIL = (
    "谢谢",
    "谢谢你",
    "谢谢您",
    "谢了",
    "多谢",
    "了",
    "吧",
    "啊",
    "呀",
    "哈",
    "哦",
    "啦",
    "呢",
    "好吗",
    "好吧",
    "行吗",
    "可以吗",
    "行不行",
    "哈哈",
    "ok",
)
_EMOTE = re.compile(r"\[[^\[\]\s]{1,6}\]")  # WeChat's [微笑] style emoji arrive as text
_PAD_DEPTH = 3


def normalize_reply(text: str) -> str:
    """NFKC (full → half width), case-folded, without spaces, punctuation, symbols or [emotes]."""
    text = _EMOTE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def classify_unsubscribe(text: str, settings: PolicySettings) -> OptKind | None:
    """ "unsubscribe" / "resubscribe" when the whole message is one of the phrases, else None."""
    normal = normalize_reply(text)
    table = settings.phrase_table
    if not normal:
        return None
    if normal in table:
        return table[normal]
    for core in _unpadded(normal):
        kind = table.get(core)
        if kind is not None and _paddable(core):
            return kind
    return None


@dataclass(frozen=True)
class OptChange:
    """A changed opt-out flag and the confirmation to send once."""

    kind: OptKind
    unsubscribed: bool
    reply: str


def opt_reply(text: str, unsubscribed: bool, settings: PolicySettings) -> OptChange | None:
    """The new opt-out state and its confirmation; None when `text` changes nothing (no second reply)."""
    kind = classify_unsubscribe(text, settings)
    if kind == "unsubscribe" and not unsubscribed:
        return OptChange(kind, True, settings.texts.unsubscribed)
    if kind == "resubscribe" and unsubscribed:
        return OptChange(kind, False, settings.texts.resubscribed)
    return None


def _unpadded(normal: str) -> Iterable[str]:
    """`normal` with up to `_PAD_DEPTH` lead or trail fillers removed, in every combination."""
    seen = {normal}
    frontier = [normal]
    for _ in range(_PAD_DEPTH):
        grown: list[str] = []
        for text in frontier:
            for lead in _LEAD:
                if text.startswith(lead) and len(text) > len(lead):
                    grown.append(text[len(lead) :])
            for trail in _TRAIL:
                if text.endswith(trail) and len(text) > len(trail):
                    grown.append(text[: -len(trail)])
        frontier = [t for t in grown if t not in seen]
        seen.update(frontier)
        yield from frontier


def _paddable(phrase: str) -> bool:
    return sum(1 for ch in phrase if "\u4e00" <= ch <= "\u9fff") >= 2


# -------------------------------------------------------------------------------------------- helpers


def _local(when: dt.datetime, settings: PolicySettings) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("policy times must be timezone-aware")
    return when.astimezone(settings.zone)


def _at(day: dt.date, minutes: int, settings: PolicySettings) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), settings.zone)


def _fmt(when: dt.datetime) -> str:
    return f"{when.month}月{when.day}日 {when:%H:%M}"
