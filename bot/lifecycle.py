"""Lifecycle stages: where a customer stands, and the one pure function that moves her.

The journey is 加微 → 入群 → 留存 → 活跃 → 转化 → 售后, with 沉默 (dormant) and 流失 (churned)
beside it. Thresholds live in `sop/stages.yaml` (`load_stages`); the rules live here, in code,
so every transition has a stable reason code and a sentence for the timeline.

`decide_stage(current, facts, trigger, now, config)` returns at most one `Transition`. `facts`
describe the customer *after* the triggering event was applied (a message's own timestamp is
already `last_message_at` and counted in `messages_in_window`). Rules, first match wins:

1. 流失 beats everything: a customer we can no longer reach becomes 流失 on any trigger. Reach
   means following at least one guide, or (when `churn.requires_leaving_groups`, the default)
   being in at least one customer group: a customer who deleted her guide but still sits in the
   brand's group can still be served there.
2. From 流失 only a return moves her: reachable again (re-added a guide → 加微; back in a group
   only → 入群). Nothing else touches a churned customer.
3. No stage yet: she enters at 入群 when she is in a group, else at 加微 when she is a contact.
4. A purchase (`order`, or `tag_added` while a purchase tag is present) moves anyone to 转化,
   including a 沉默 customer. A new `order` from 售后 is a repurchase: back to 转化. A tag alone
   never moves 售后 back (the tag was most likely there already).
5. A 沉默 customer who acts (`message`, `group_joined`, `contact_added`) wakes up to the stage
   her facts support: a buyer to 售后 (or 转化 while the purchase is recent), else 活跃 with enough
   recent messages, else 留存 once her retention period has passed, else 入群 / 加微.
6. `message` moves 加微 / 入群 / 留存 to 活跃 once she sent `active.min_messages` within
   `active.window_days`. 活跃 is kept until she goes quiet (沉默) or buys; it is not revoked.
7. `group_joined` moves 加微 to 入群.
8. Time rules, on `tick` (the engine's timer, see `due_checks`) and as a fallback on every other
   trigger, so a missed timer cannot strand anyone:
   a. 沉默 when her last sign of life (latest of message, purchase, add, group join) is
      `dormant_after_days` old; checked first, so after downtime she lands in the state that is
      true now instead of walking through stages she has already left;
   b. 转化 → 售后 `after_sales_after_days` after the purchase;
   c. 加微 / 入群 → 留存 `retained_after_days` after she became a contact (or, for a customer who
      is only in groups, after she joined one).

Applying a returned transition and calling again with the same facts and trigger gives None: the
result is settled. Durations are exact multiples of 24 hours from the recorded instants.
`due_checks(current, facts, config)` gives the earliest instant a time rule could fire, so the
engine keeps one timer per customer instead of scanning everyone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from bot import errors, yamlfile

ADDED = "加微"
IN_GROUP = "入群"
RETAINED = "留存"
ACTIVE = "活跃"
CONVERTED = "转化"
AFTER_SALES = "售后"
DORMANT = "沉默"
CHURNED = "流失"

STAGES = (ADDED, IN_GROUP, RETAINED, ACTIVE, CONVERTED, AFTER_SALES, DORMANT, CHURNED)
"""Every stage, funnel first, then the two side stages."""

# `tag_added` is meant for purchase tags (`is_purchase_tag`); other tags do not move stages.
Trigger = Literal[
    "contact_added", "contact_deleted", "group_joined", "group_left", "message", "order", "tag_added", "tick"
]
TRIGGERS: tuple[str, ...] = get_args(Trigger)

Reason = Literal[
    "added",
    "joined_group",
    "retained",
    "active",
    "purchased",
    "repurchased",
    "after_sales",
    "dormant",
    "woke_up",
    "churned",
    "returned",
]

_ACTIONS = frozenset(("message", "group_joined", "contact_added"))  # what wakes a 沉默 customer


# -------------------------------------------------------------------------------------------- config


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Days = Annotated[int, Field(ge=1, le=3650, strict=True)]


class ActiveRule(_Model):
    """活跃: at least `min_messages` customer messages within the last `window_days` days."""

    min_messages: Annotated[int, Field(ge=1, le=1000, strict=True)] = 3
    window_days: Days = 7


class ChurnRule(_Model):
    """流失: when a customer counts as gone."""

    requires_leaving_groups: bool = True


class StagesConfig(_Model):
    """`sop/stages.yaml`: the thresholds of the lifecycle rules."""

    retained_after_days: Days = 7
    active: ActiveRule = ActiveRule()
    purchase_tags: tuple[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)], ...] = (
        "已购",
    )
    after_sales_after_days: Days = 3
    dormant_after_days: Days = 30
    churn: ChurnRule = ChurnRule()

    @model_validator(mode="after")
    def _dormant_after_retained(self) -> StagesConfig:
        # Swapped numbers (3 vs 30) would send every silent newcomer to 沉默 before 留存.
        if self.dormant_after_days <= self.retained_after_days:
            raise ValueError(
                f"dormant_after_days ({self.dormant_after_days}) must be longer than "
                f"retained_after_days ({self.retained_after_days})"
            )
        return self


def load_stages(path: str | Path) -> StagesConfig:
    """Read and validate a stages file; raises ContentErrors listing every problem as file:line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise errors.ContentErrors([errors.ContentError(str(path), None, "file does not exist")]) from exc
    except UnicodeDecodeError as exc:
        raise errors.ContentErrors(
            [errors.ContentError(str(path), None, f"not UTF-8 text ({exc.reason})")]
        ) from exc
    return load_stages_text(text, str(path))


def load_stages_text(text: str, name: str = "stages.yaml") -> StagesConfig:
    """Validate a stages file given as text (an empty file means the defaults); raises ContentErrors."""
    try:
        loaded = yamlfile.load_text(text, name)
    except errors.ContentError as exc:
        raise errors.ContentErrors([exc]) from exc
    problems: list[errors.ContentError] = list(loaded.problems)
    data = {} if loaded.data is None else loaded.data
    config: StagesConfig | None = None
    if not isinstance(data, dict):
        problems.append(errors.ContentError(name, 1, "must be a mapping of thresholds"))
    else:
        try:
            config = StagesConfig.model_validate(data)
        except ValidationError as exc:
            problems += _problems(exc, loaded)
    if problems or config is None:
        raise errors.ContentErrors(sorted(problems, key=lambda p: (p.line or 0, p.reason)))
    return config


def _problems(exc: ValidationError, loaded: yamlfile.Loaded) -> list[errors.ContentError]:
    out = yamlfile.problems_from(exc, loaded)
    # A model-level check has an empty location: point at the key it is about.
    line = loaded.line_of(("dormant_after_days",))
    return [
        errors.ContentError(p.file, line, p.reason) if p.reason.startswith("dormant_after_days (") else p
        for p in out
    ]


# --------------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class StageFacts:
    """What the engine knows about one customer, after the triggering event was applied."""

    is_contact: bool = False  # follows at least one guide
    added_at: dt.datetime | None = None  # start of her earliest current follow
    in_groups: int = 0  # customer groups she is in now
    joined_group_at: dt.datetime | None = None  # when she last joined a group
    messages_in_window: int = 0  # her messages within active.window_days before now
    last_message_at: dt.datetime | None = None
    last_purchase_at: dt.datetime | None = None  # latest order
    purchase_tagged_at: dt.datetime | None = None  # when a purchase tag was added; None = no such tag

    @property
    def purchased_at(self) -> dt.datetime | None:
        """When she last bought: the latest order, else the purchase tag's time."""
        return self.last_purchase_at or self.purchase_tagged_at

    def reachable(self, config: StagesConfig) -> bool:
        """True while a guide or (when configured) a customer group can still reach her."""
        return self.is_contact or (config.churn.requires_leaving_groups and self.in_groups > 0)


@dataclass(frozen=True)
class Transition:
    """Move to `to_stage`, because of `reason` (stable code); `detail` is the timeline's sentence."""

    to_stage: str
    reason: Reason
    detail: str


# --------------------------------------------------------------------------------------------- rules


def decide_stage(
    current: str | None, facts: StageFacts, trigger: Trigger, now: dt.datetime, config: StagesConfig
) -> Transition | None:
    """The one transition `trigger` causes for a customer in `current` with `facts` at `now`, if any."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    if current is not None and current not in STAGES:
        raise ValueError(f"unknown stage {current!r}")
    reachable = facts.reachable(config)

    if current == CHURNED:  # rule 2
        if not reachable:
            return None
        if facts.is_contact:
            return Transition(ADDED, "returned", "流失后重新添加了导购")
        return Transition(IN_GROUP, "returned", "流失后重新加入了客户群")
    if not reachable:  # rule 1
        if current is None:
            return None
        return Transition(CHURNED, "churned", _churn_detail(facts, trigger))
    if current is None:  # rule 3
        if facts.in_groups > 0:
            return Transition(IN_GROUP, "joined_group", "加入了客户群")
        return Transition(ADDED, "added", "添加了导购为好友")

    purchase = _purchase(current, facts, trigger, config)  # rule 4
    if purchase is not None:
        return purchase
    if current == DORMANT and trigger in _ACTIONS:  # rule 5
        return _wake(facts, trigger, now, config)
    if (
        trigger == "message"
        and current in (ADDED, IN_GROUP, RETAINED)
        and facts.messages_in_window >= config.active.min_messages
    ):  # rule 6
        return Transition(ACTIVE, "active", _active_detail(facts, config))
    if trigger == "group_joined" and current == ADDED:  # rule 7
        return Transition(IN_GROUP, "joined_group", "加入了客户群")
    return _timed(current, facts, now, config)  # rule 8


def due_checks(current: str | None, facts: StageFacts, config: StagesConfig) -> dt.datetime | None:
    """The earliest instant a time rule could move this customer (may be past: run it now); None if none."""
    if current in (None, CHURNED):
        return None
    candidates: list[dt.datetime] = []
    if current != DORMANT:
        life = _last_sign_of_life(facts)
        if life is not None:
            candidates.append(life + dt.timedelta(days=config.dormant_after_days))
    purchased = facts.purchased_at
    if current == CONVERTED and purchased is not None:
        candidates.append(purchased + dt.timedelta(days=config.after_sales_after_days))
    since = _retention_start(facts)
    if current in (ADDED, IN_GROUP) and since is not None:
        candidates.append(since + dt.timedelta(days=config.retained_after_days))
    return min(candidates, default=None)


def is_purchase_tag(tag: str, config: StagesConfig) -> bool:
    """True when `tag` marks a purchase (set `purchase_tagged_at` and send `tag_added` for it)."""
    return tag.strip() in config.purchase_tags


def active_window_start(now: dt.datetime, config: StagesConfig) -> dt.datetime:
    """Count her messages at or after this instant for `StageFacts.messages_in_window`."""
    return now - dt.timedelta(days=config.active.window_days)


def _purchase(current: str, facts: StageFacts, trigger: str, config: StagesConfig) -> Transition | None:
    if trigger == "order" and facts.last_purchase_at is not None:
        if current == AFTER_SALES:
            return Transition(CONVERTED, "repurchased", "售后期内再次下单")
        if current != CONVERTED:
            return Transition(CONVERTED, "purchased", "下单购买")
    buyer = current in (CONVERTED, AFTER_SALES)
    if trigger == "tag_added" and facts.purchase_tagged_at is not None and not buyer:
        tags = "、".join(f"「{tag}」" for tag in config.purchase_tags)
        return Transition(CONVERTED, "purchased", f"被打上购买标签{tags}")
    return None


def _wake(facts: StageFacts, trigger: str, now: dt.datetime, config: StagesConfig) -> Transition:
    what = {"message": "发来消息", "group_joined": "加入了客户群", "contact_added": "添加了导购"}[trigger]
    detail = f"沉默后再次{what}"
    purchased = facts.purchased_at
    if purchased is not None:
        recent = now < purchased + dt.timedelta(days=config.after_sales_after_days)
        return Transition(CONVERTED if recent else AFTER_SALES, "woke_up", detail)
    if facts.messages_in_window >= config.active.min_messages:
        return Transition(ACTIVE, "woke_up", detail)
    since = _retention_start(facts)
    if since is not None and now >= since + dt.timedelta(days=config.retained_after_days):
        return Transition(RETAINED, "woke_up", detail)
    return Transition(IN_GROUP if facts.in_groups > 0 else ADDED, "woke_up", detail)


def _timed(current: str, facts: StageFacts, now: dt.datetime, config: StagesConfig) -> Transition | None:
    life = _last_sign_of_life(facts)
    days = config.dormant_after_days
    if current != DORMANT and life is not None and now >= life + dt.timedelta(days=days):
        return Transition(DORMANT, "dormant", f"{days} 天没有任何互动")
    purchased = facts.purchased_at
    days = config.after_sales_after_days
    if current == CONVERTED and purchased is not None and now >= purchased + dt.timedelta(days=days):
        return Transition(AFTER_SALES, "after_sales", f"购买满 {days} 天，进入售后期")
    since = _retention_start(facts)
    days = config.retained_after_days
    if current in (ADDED, IN_GROUP) and since is not None and now >= since + dt.timedelta(days=days):
        where = "添加导购" if facts.is_contact else "入群"
        still = "仍是好友" if facts.is_contact else "仍在群内"
        return Transition(RETAINED, "retained", f"{where} {days} 天后{still}")
    return None


def _last_sign_of_life(facts: StageFacts) -> dt.datetime | None:
    moments = [
        m
        for m in (facts.last_message_at, facts.purchased_at, facts.added_at, facts.joined_group_at)
        if m is not None
    ]
    return max(moments, default=None)


def _retention_start(facts: StageFacts) -> dt.datetime | None:
    # 留存 means "still with us": as a contact since the add, or, group-only, since joining a group.
    if facts.is_contact:
        return facts.added_at
    return facts.joined_group_at if facts.in_groups > 0 else None


def _active_detail(facts: StageFacts, config: StagesConfig) -> str:
    return f"{config.active.window_days} 天内发来 {facts.messages_in_window} 条消息"


def _churn_detail(facts: StageFacts, trigger: str) -> str:
    if trigger == "group_left":
        return "退出了所有客户群，且已不是任何导购的好友"
    if facts.in_groups > 0:
        return "删除了所有导购（仍在客户群，但按配置视为流失）"
    return "删除了所有导购，且不在任何客户群"
