"""What the SOP runner does with one due run: a pure function of (run, playbook, customer, now).

`decide_run` checks the playbook's exit conditions, branches a run whose wait is over (on the
customer's reply or click, or `otherwise`), skips a step that is late past `max_delay` or whose
`when` is false, and asks the manners (`bot/policy.py`) about each route of the step in order:
the first route allowed sends; if none is allowed but one may go later the run is deferred to the
earliest such time; otherwise the step is skipped. Every decision leaves a log entry with its
reason, so `siyu sop status` and the timeline can say why a customer got (or did not get) a step.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from bot import policy
from bot.playbooks import Playbook, Step, next_step


class RunView(NamedTuple):
    """An enrollment as the runner claimed it (times are epoch seconds)."""

    id: int
    external_userid: str
    playbook_id: str
    iteration: int
    enrolled_stage: str
    enrolled_at: float
    step_id: str
    state: str
    due_at: float
    step_reached_at: float
    reaction: str = ""


class CustomerView(NamedTuple):
    """What the runner knows about the customer of a run."""

    external_userid: str
    facts: Mapping[str, Any]
    guide: str = ""
    open_kfid: str = ""
    history: policy.SendHistory = policy.SendHistory()


class LogEntry(NamedTuple):
    """One line of the run's history (sop_log)."""

    step_id: str
    outcome: str  # sent | deferred | skipped | branched | exited | done
    reason: str = ""
    detail: str = ""
    route: str = ""


class RunOutcome(NamedTuple):
    """The run's new state, what to log, and the step to send (if any) by which route."""

    state: str
    step_id: str
    due_at: float
    step_reached_at: float
    log: tuple[LogEntry, ...]
    send: Step | None = None
    route: str = ""
    reason: str = ""


def decide_run(
    run: RunView,
    playbook: Playbook | None,
    customer: CustomerView,
    settings: policy.PolicySettings,
    now: dt.datetime,
) -> RunOutcome:
    """The next thing to do for `run` at `now`."""
    ts = _epoch(now)
    if playbook is None or not playbook.enabled:
        return _exit(run, ts, "playbook_gone", "剧本已删除或停用")
    why = playbook.exit.reason(customer.facts, run.enrolled_stage or None)
    if why is not None:
        return _exit(run, ts, "exit", why)
    if not playbook.has_step(run.step_id):
        return _exit(run, ts, "step_gone", f"步骤 {run.step_id} 已从剧本中删除")
    step = playbook.step(run.step_id)
    fresh = run.state == "due" and step is playbook.first_step and run.step_reached_at == run.enrolled_at
    if fresh and playbook.when is not None and not playbook.when.evaluate(customer.facts):
        # The enrollment condition is checked with the facts at the first step, not at the trigger.
        return _exit(run, ts, "not_eligible", f"不符合报名条件：{playbook.when.text}")
    if run.state == "waiting":
        reaction = run.reaction if run.reaction in ("reply", "click") else None
        entry = LogEntry(step.id, "branched", reaction or "no_reaction", _branch_detail(reaction))
        return _advance(run, playbook, next_step(playbook, step.id, reaction), now, (entry,))
    due = dt.datetime.fromtimestamp(run.due_at, now.tzinfo)
    if playbook.is_late(due, now):
        late = LogEntry(
            step.id, "skipped", "late", f"晚于计划 {_minutes(now - due)} 分钟，超过 max_delay，不补发"
        )
        return _advance(run, playbook, next_step(playbook, step.id, None), now, (late,))
    if step.when is not None and not step.when.evaluate(customer.facts):
        entry = LogEntry(step.id, "skipped", "condition", f"条件不满足：{step.when.text}")
        return _advance(run, playbook, next_step(playbook, step.id, None), now, (entry,))
    return _route(run, playbook, step, customer, settings, now, due)


def _route(
    run: RunView,
    playbook: Playbook,
    step: Step,
    customer: CustomerView,
    settings: policy.PolicySettings,
    now: dt.datetime,
    due: dt.datetime,
) -> RunOutcome:
    deferrals: list[policy.Defer] = []
    skips: list[tuple[str, str, str]] = []
    for route in step.route:
        missing = _missing_for(route, customer)
        if missing is not None:
            skips.append((route, *missing))
            continue
        proposal = policy.Proposal(
            customer=customer.external_userid,
            guide=customer.guide,
            playbook=playbook.id,
            step=step.id,
            marketing=playbook.marketing,
            route=route,  # type: ignore[arg-type]
            due_at=due,
        )
        decision = policy.decide(proposal, customer.history, settings, now)
        if isinstance(decision, policy.Send):
            return _sent(run, playbook, step, route, now)
        if isinstance(decision, policy.Defer):
            deferrals.append(decision)
        else:
            skips.append((route, decision.reason, decision.detail))
    if deferrals:
        first = min(deferrals, key=lambda d: d.until)
        entry = LogEntry(step.id, "deferred", first.reason, first.detail)
        return RunOutcome(
            "due", step.id, first.until.timestamp(), run.step_reached_at, (entry,), reason=first.reason
        )
    reason = skips[0][1] if skips else "no_route"
    detail = "；".join(f"{route}: {detail}" for route, _, detail in skips) or "没有可用的发送方式"
    entry = LogEntry(step.id, "skipped", reason, detail[:255])
    return _advance(run, playbook, next_step(playbook, step.id, None), now, (entry,))


def _missing_for(route: str, customer: CustomerView) -> tuple[str, str] | None:
    """Why `route` cannot reach this customer at all (before manners), or None."""
    if route == "kf" and not customer.open_kfid:
        return "kf_window", "客户没有微信客服会话"
    if route in ("mass_task", "guide_notify") and not customer.guide:
        return "no_guide", "客户当前没有跟进导购"
    return None


def _sent(run: RunView, playbook: Playbook, step: Step, route: str, now: dt.datetime) -> RunOutcome:
    ts = _epoch(now)
    entry = LogEntry(step.id, "sent", route=route)
    if step.wait is not None:
        waiting = RunOutcome(
            "waiting", step.id, ts + step.wait.total_seconds(), ts, (entry,), send=step, route=route
        )
        return waiting
    after = _advance(run, playbook, next_step(playbook, step.id, None), now, (entry,))
    return after._replace(send=step, route=route)


def _advance(
    run: RunView, playbook: Playbook, following: Step | None, now: dt.datetime, log: tuple[LogEntry, ...]
) -> RunOutcome:
    ts = _epoch(now)
    if following is None:
        return RunOutcome("done", run.step_id, ts, ts, (*log, LogEntry(run.step_id, "done", "finished")))
    enrolled = dt.datetime.fromtimestamp(run.enrolled_at, now.tzinfo)
    due = following.due_at(enrolled, now, now.tzinfo or dt.UTC)
    return RunOutcome("due", following.id, due.timestamp(), ts, log)


def _exit(run: RunView, ts: float, reason: str, detail: str) -> RunOutcome:
    entry = LogEntry(run.step_id, "exited", reason, detail[:255])
    return RunOutcome("exited", run.step_id, ts, run.step_reached_at, (entry,), reason=reason)


def _branch_detail(reaction: str | None) -> str:
    return {"reply": "客户回复了", "click": "客户点击了链接"}.get(reaction or "", "等待期内没有回应")


@functools.lru_cache(maxsize=8)
def _epoch(now: dt.datetime) -> float:
    """`now` in epoch seconds; a batch decides every run at one `now`, and timestamp() is not cheap."""
    return now.timestamp()


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)
