"""SOP playbooks: enrollment, the customer's reactions, and unsubscribe.

Triggers: customer messages (kf, chat archive) count as a reply to every run that waits for one
and may be an unsubscribe ("退订", "别发了", configurable) or resubscribe; `LinkClicked` (a tracked
/r/<token> link) is a click for the run whose link it was; the `sop_date` timer enrolls a customer
when a date attribute reaches a playbook's month (baby's 6-month birthday). Enrollment on stage
changes and orders is asked for by handlers/lifecycle.py through `enroll_on`. The runner that sends
the steps is bot/sop_runner.py with the decisions in handlers/sop_decide.py.
Actions: `Enroll`, `RecordReaction`, `SetUnsubscribed`, `SendKfText` (the confirmation),
`RecordTimeline`, `Schedule`. Idempotency: Enroll is one live run per customer and playbook;
a reaction only wakes a run still waiting; the confirmation's kf msgid comes from the message.
Config: `sop.dir`, `sop.policy` (unsubscribe phrases and texts).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot import actions as act
from bot import events as ev
from bot import policy
from bot.actions import Action
from bot.deps import Deps
from bot.router import Router
from bot.scheduler import Timer

router = Router("sop")

SOP_DATE = "sop_date"
CURRENT_MONTH_DAYS = 30
DATE_HOUR = 10
"""Date-triggered runs start at 10:00 local on the day (the first step's own timing follows)."""


# ------------------------------------------------------------------------------------------ decisions


def enroll_on(
    deps: Deps, customer: str, kind: str, value: str, at: float, stage: str, *, once: bool = False
) -> list[Action]:
    """Enroll `customer` in every enabled playbook triggered by (`kind`, `value`).

    `once`: only if she never ran the playbook (a tag said again must not start it over).
    """
    playbooks = deps.playbooks()
    if playbooks is None:
        return []
    tz = ZoneInfo(deps.settings.sop.policy.timezone)
    enrolled = dt.datetime.fromtimestamp(at, tz)
    out: list[Action] = []
    for playbook in playbooks.triggered_by(kind, value):
        first = playbook.first_step
        due = first.due_at(enrolled, None, tz).timestamp()
        out.append(act.Enroll(customer, playbook.id, first.id, due, stage, at, f"{kind}:{value}", once=once))
    return out


def date_timers(deps: Deps, customer: str, attribute: str, value: str, at: float) -> list[Action]:
    """Timers for the dates a newly stored attribute gives date-triggered playbooks (current and future)."""
    playbooks = deps.playbooks()
    if playbooks is None:
        return []
    tz = ZoneInfo(deps.settings.sop.policy.timezone)
    today = dt.datetime.fromtimestamp(at, tz).date()
    out: list[Action] = []
    for playbook, trigger in playbooks.dated():
        if trigger.attribute != attribute:
            continue
        for months, day in trigger.fire_dates(value):
            # A month she is in now still counts (told "8个月" on the 23rd, she gets the 8-month
            # message), but tomorrow morning, not while she is chatting; older months are past.
            if day < today - dt.timedelta(days=CURRENT_MONTH_DAYS):
                continue
            if day <= today:
                day = today + dt.timedelta(days=1)
            when = dt.datetime.combine(day, dt.time(DATE_HOUR), tzinfo=tz).timestamp()
            # Keyed by the month, not the value: a corrected birth month does not enroll twice.
            key = f"sopdate:{customer}:{playbook.id}:{months}"
            payload = {"external_userid": customer, "playbook": playbook.id, "months": months}
            out.append(act.Schedule(key, SOP_DATE, due_at=max(when, at), payload=payload))
    return out


def opt_actions(
    customer: str,
    text: str,
    unsubscribed: bool,
    at: float,
    source_key: str,
    deps: Deps,
    open_kfid: str = "",
    guides: tuple[str, ...] = (),
) -> list[Action]:
    """Unsubscribe or resubscribe on the customer's words; confirmed by kf, or else by her guide."""
    change = policy.opt_reply(text, unsubscribed, deps.settings.sop.policy)
    if change is None:
        return []
    out: list[Action] = [act.SetUnsubscribed(customer, change.unsubscribed, at, source_key)]
    if open_kfid:
        out.append(act.SendKfText(open_kfid, customer, change.reply, reply_to=f"optout:{source_key}"))
    elif guides:
        # In a guide's 1:1 chat no bot may answer: her guide confirms it, and is told so.
        what = "退订营销推送" if change.unsubscribed else "恢复营销推送"
        notice = (
            f"【客户{what}】客户（{customer}）刚刚在和您的聊天中要求{what}，系统已处理。"
            f"请您回复她确认一下：\n{change.reply}"
        )
        out.append(act.NotifyStaff(tuple(guides), notice, key=f"optout:{source_key}"))
    return out


# ------------------------------------------------------------------------------------------- handlers


@router.on(ev.KfCustomerMessage)
async def on_kf_message(event: ev.KfCustomerMessage, deps: Deps) -> list[Action]:
    """A reply to waiting runs; maybe an unsubscribe, confirmed in the same kf session."""
    return await _customer_wrote(event.external_userid, event.content, event, deps, event.open_kfid)


@router.on(ev.ArchiveMessage, when=lambda e: e.from_customer and e.action == "send")
async def on_archive_message(event: ev.ArchiveMessage, deps: Deps) -> list[Action]:
    """She wrote to a guide (chat archive): a reply; an unsubscribe there is recorded (no bot may answer)."""
    if event.roomid:
        return []  # a word in a group is no reply to a 1:1 push
    guides = tuple(u for u in event.tolist if not ev.is_external_userid(u))
    return await _customer_wrote(event.from_id, event.content, event, deps, guides=guides)


async def _customer_wrote(
    customer: str,
    text: str,
    event: ev.Event,
    deps: Deps,
    open_kfid: str = "",
    guides: tuple[str, ...] = (),
) -> list[Action]:
    at = float(event.create_time) if getattr(event, "create_time", 0) else deps.clock.timestamp()
    out: list[Action] = [act.RecordReaction(customer, "reply", at)]
    if text and deps.lifecycle is not None:
        stored = await deps.lifecycle.get(customer, at, ())
        out.extend(
            opt_actions(customer, text, stored.unsubscribed, at, event.dedup_key, deps, open_kfid, guides)
        )
    return out


@router.on(ev.LinkClicked)
def on_click(event: ev.LinkClicked, deps: Deps) -> list[Action]:
    """A tracked link was opened: the run that sent it branches on_click."""
    at = float(event.clicked_at) or deps.clock.timestamp()
    note = act.RecordTimeline(
        event.external_userid,
        "link_clicked",
        f"点击了 SOP 链接（{event.step_id}）",
        at,
        event.dedup_key,
        {"step": event.step_id, "enrollment": event.enrollment_id},
    )
    return [act.RecordReaction(event.external_userid, "click", at, event.enrollment_id), note]


async def on_date(timer: Timer, deps: Deps) -> list[Action]:
    """A `sop_date` timer: the attribute's date came; enroll in that playbook."""
    playbooks = deps.playbooks()
    playbook = playbooks.get(str(timer.payload.get("playbook", ""))) if playbooks is not None else None
    if playbook is None or not playbook.enabled:
        return []
    customer = str(timer.payload.get("external_userid", ""))
    at = deps.clock.timestamp()
    tz = ZoneInfo(deps.settings.sop.policy.timezone)
    first = playbook.first_step
    due = first.due_at(dt.datetime.fromtimestamp(at, tz), None, tz).timestamp()
    reason = f"date:{timer.payload.get('months')}"
    return [act.Enroll(customer, playbook.id, first.id, due, "", at, reason)]
