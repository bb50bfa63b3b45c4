"""Lifecycle stages: moves customers through 加微 → 入群 → 留存 → 活跃 → 转化 → 售后, 沉默 and 流失.

Triggers: a contact added or deleted (`change_external_contact`), a customer message (kf, chat
archive), an order (`OrderPaid` from the shop's webhook), and the `stage_check` timer (time rules
such as 留存 after N days or 沉默 after N quiet days; group joins and purchase tags schedule one
too). Actions: `SetStage` (the timeline says why), `NoteCustomerMessage`, `RecordOrder`,
`Enroll` for playbooks triggered by the stage entered, and `Schedule` of the next time check.
Idempotency: stage and timeline writes are keyed by the event; a replay decides the same.
Config: `sop/stages.yaml` (bot/lifecycle.py), `sop.policy.timezone`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot import actions as act
from bot import events as ev
from bot import lifecycle
from bot.actions import Action
from bot.deps import Deps
from bot.router import Router
from bot.scheduler import Timer
from bot.store.readers import StoredFacts
from handlers import sop

router = Router("lifecycle")

STAGE_CHECK = "stage_check"


# ------------------------------------------------------------------------------------------ decisions


def stage_facts(stored: StoredFacts, tz: dt.tzinfo) -> lifecycle.StageFacts:
    """StoredFacts (epoch seconds) as the rules' StageFacts (aware datetimes)."""

    def when(ts: float | None) -> dt.datetime | None:
        return None if ts is None else dt.datetime.fromtimestamp(ts, tz)

    return lifecycle.StageFacts(
        is_contact=stored.follows > 0,
        added_at=when(stored.added_at),
        in_groups=stored.in_groups,
        joined_group_at=when(stored.joined_group_at),
        messages_in_window=stored.messages_in_window,
        last_message_at=when(stored.last_message_at),
        last_purchase_at=when(stored.last_purchase_at),
        purchase_tagged_at=when(stored.purchase_tagged_at),
    )


def with_event(stored: StoredFacts, trigger: str, at: float) -> StoredFacts:
    """The facts after the triggering event (its own effects are not committed yet)."""
    from dataclasses import replace

    match trigger:
        case "contact_added":
            return replace(stored, follows=max(stored.follows, 1), added_at=stored.added_at or at)
        case "contact_deleted":
            # The event ends one follow; the count read still includes it.
            return replace(stored, follows=max(0, stored.follows - 1))
        case "message":
            last = max(stored.last_message_at or at, at)
            return replace(stored, messages_in_window=stored.messages_in_window + 1, last_message_at=last)
        case "order":
            return replace(stored, last_purchase_at=max(stored.last_purchase_at or at, at))
    return stored


def transition_actions(
    customer: str,
    current: str | None,
    facts: lifecycle.StageFacts,
    trigger: str,
    at: float,
    source_key: str,
    deps: Deps,
) -> list[Action]:
    """The stage move (if any), the playbooks it starts, and the next time check."""
    config: lifecycle.StagesConfig = deps.stages() or lifecycle.StagesConfig()
    tz = _zone(deps)
    now = dt.datetime.fromtimestamp(at, tz)
    out: list[Action] = []
    stage = current
    transition = lifecycle.decide_stage(current, facts, trigger, now, config)  # type: ignore[arg-type]
    if transition is not None:
        stage = transition.to_stage
        out.append(act.SetStage(customer, stage, transition.reason, transition.detail, at, source_key))
        out.extend(sop.enroll_on(deps, customer, "stage_entered", stage, at, stage))
    due = lifecycle.due_checks(stage, facts, config)
    if due is not None:
        when = max(due.timestamp(), at)
        out.append(
            act.Schedule(
                check_key(customer, when, at, tz),
                STAGE_CHECK,
                due_at=when,
                payload={"external_userid": customer, "trigger": "tick"},
            )
        )
    return out


def check_key(customer: str, when: float, now: float, tz: dt.tzinfo) -> str:
    """The stage check's timer key: one per customer and day for checks days away (each message
    moves the 沉默 check; an early check finds nothing and books the next), per minute for one
    due within a day, so a check that already fired today cannot swallow a new one."""
    local = dt.datetime.fromtimestamp(when, tz)
    resolution = "%Y%m%d" if when - now > 86400 else "%Y%m%d%H%M"
    return f"stage:{customer}:{local.strftime(resolution)}"


async def evaluate(deps: Deps, customer: str, trigger: str, at: float, source_key: str) -> list[Action]:
    """Read the customer's facts, apply the event, and decide."""
    if deps.lifecycle is None or not customer:
        return []
    config: lifecycle.StagesConfig = deps.stages() or lifecycle.StagesConfig()
    tz = _zone(deps)
    window_start = lifecycle.active_window_start(dt.datetime.fromtimestamp(at, tz), config).timestamp()
    stored = with_event(await deps.lifecycle.get(customer, window_start, config.purchase_tags), trigger, at)
    facts = stage_facts(stored, tz)
    return transition_actions(customer, stored.stage, facts, trigger, at, source_key, deps)


def _zone(deps: Deps) -> dt.tzinfo:
    return ZoneInfo(deps.settings.sop.policy.timezone)


def _at(event: ev.Event, deps: Deps) -> float:
    return float(event.create_time) if getattr(event, "create_time", 0) else deps.clock.timestamp()


# ------------------------------------------------------------------------------------------- handlers


@router.on(ev.ContactAdded)
async def on_added(event: ev.ContactAdded, deps: Deps) -> list[Action]:
    """A customer added a guide: 加微 (or back from 流失)."""
    return await evaluate(deps, event.external_userid, "contact_added", _at(event, deps), event.dedup_key)


@router.on(ev.ContactDeletedByCustomer, ev.ContactDeletedByGuide)
async def on_deleted(event: ev.ContactEvent, deps: Deps) -> list[Action]:
    """A follow ended: 流失 when nothing reaches her any more."""
    return await evaluate(deps, event.external_userid, "contact_deleted", _at(event, deps), event.dedup_key)


@router.on(ev.KfCustomerMessage)
async def on_kf_message(event: ev.KfCustomerMessage, deps: Deps) -> list[Action]:
    """She wrote to 微信客服: active, awake again."""
    return await _message(event.external_userid, event, deps)


@router.on(ev.ArchiveMessage, when=lambda e: e.from_customer and e.action == "send")
async def on_archive_message(event: ev.ArchiveMessage, deps: Deps) -> list[Action]:
    """She wrote to a guide or in a group (chat archive)."""
    return await _message(event.from_id, event, deps)


async def _message(customer: str, event: ev.Event, deps: Deps) -> list[Action]:
    at = _at(event, deps)
    actions = await evaluate(deps, customer, "message", at, event.dedup_key)
    return [act.UpsertCustomer(customer, seen_at=at), act.NoteCustomerMessage(customer, at), *actions]


@router.on(ev.OrderPaid)
async def on_order(event: ev.OrderPaid, deps: Deps) -> list[Action]:
    """The shop reported a purchase: 转化, and playbooks triggered by the order."""
    at = float(event.paid_at) or _at(event, deps)
    customer = event.external_userid
    record = act.RecordOrder(event.order_id, customer, event.amount_cents, at, {"items": list(event.items)})
    actions = await evaluate(deps, customer, "order", at, event.dedup_key)
    note = act.RecordTimeline(
        customer, "order", f"下单 {event.order_id}（{event.amount_cents / 100:.2f} 元）", at, event.dedup_key
    )
    enroll = sop.enroll_on(deps, customer, "event", "order_paid", at, "")
    return [act.UpsertCustomer(customer, seen_at=at), record, note, *actions, *enroll]


async def on_stage_check(timer: Timer, deps: Deps) -> list[Action]:
    """A `stage_check` timer: time rules, a group join or leave, a purchase tag."""
    customer = str(timer.payload.get("external_userid", ""))
    trigger = str(timer.payload.get("trigger", "tick"))
    return await evaluate(deps, customer, trigger, deps.clock.timestamp(), f"timer:{timer.key}")
