"""`siyu sop validate`, `siyu sop simulate` and `siyu sop status`; bot/cli.py wires them under `sop`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot import content, errors, playbooks, policy, profile, yamlfile
from bot.config import load_settings


def add_sop_commands(sop_subparsers: argparse._SubParsersAction) -> None:
    """Register `validate`, `simulate` and `status` on the `sop` subcommand's subparsers."""
    cmd = sop_subparsers.add_parser(
        "validate", help="check sop/ (stages and playbooks); errors as file:line: reason"
    )
    cmd.add_argument("--dir", default="sop", help="sop directory (default: sop)")
    cmd.add_argument(
        "--content-dir",
        help="content library whose replies.yaml `reply:` ids must name "
        "(default: content.dir from the settings, or content_library when there are none)",
    )
    cmd.set_defaults(func=cmd_validate)

    cmd = sop_subparsers.add_parser(
        "simulate",
        help="run one playbook against a described customer on a fake clock (no WeCom); print the timeline",
    )
    cmd.add_argument("playbook", metavar="PLAYBOOK.yaml", help="the playbook file, e.g. sop/new_contact.yaml")
    cmd.add_argument(
        "--customer", required=True, metavar="FILE.yaml", help="the customer's facts (see sop/examples/)"
    )
    cmd.add_argument("--days", type=int, default=30, help="how many days to simulate (default 30)")
    cmd.add_argument(
        "--replies",
        action="extend",
        nargs="+",
        default=[],
        metavar="'dayN HH:MM TEXT'",
        help="her replies, e.g. 'day2 10:30 好的' (day 0 = the enrollment day; or 'YYYY-MM-DD HH:MM TEXT')",
    )
    cmd.add_argument(
        "--clicks",
        action="extend",
        nargs="+",
        default=[],
        metavar="'dayN HH:MM'",
        help="her clicks on a link the run sent, e.g. 'day3 21:00'",
    )
    cmd.add_argument(
        "--start",
        metavar="'YYYY-MM-DD HH:MM'",
        help="enrollment time, Asia/Shanghai (default: the customer's added_at)",
    )
    cmd.add_argument(
        "--content-dir", help="content library for `reply:` texts (default: content.dir from the settings)"
    )
    cmd.add_argument("--config", default=argparse.SUPPRESS, help="settings file (manners: quiet hours, caps)")
    cmd.set_defaults(func=cmd_simulate)

    cmd = sop_subparsers.add_parser(
        "status", help="per playbook and step: live runs, sent, deferred, skipped, exited, done, failed sends"
    )
    cmd.add_argument("--config", default=argparse.SUPPRESS, help="settings file (default: ./config.yaml)")
    cmd.set_defaults(func=cmd_status)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print OK with counts, or every error; exit 1 on errors."""
    directory = Path(args.dir)
    problems: list[errors.ContentError] = []
    stages, stage_names = _stages(directory, problems)
    library = None
    library_dir = _content_dir(args)
    if library_dir is not None:
        try:
            library = content.load_library(library_dir)
        except errors.ContentErrors:
            # The library's own errors are `siyu content validate`'s to report; say why refs went unchecked.
            problems.append(
                errors.ContentError(
                    str(library_dir), None, "content library invalid: `reply:` ids not checked"
                )
            )
    result = None
    try:
        result = playbooks.load_playbooks(directory, library, stage_names)
    except errors.ContentErrors as exc:
        problems += exc.errors
    if problems:
        for error in problems:
            path = error.file if Path(error.file) in (directory, library_dir) else str(directory / error.file)
            print(
                f"{path}:{error.line}: {error.reason}"
                if error.line is not None
                else f"{path}: {error.reason}"
            )
        print(f"{len(problems)} error(s)")
        return 1
    assert result is not None
    steps = sum(len(p.steps) for p in result.playbooks)
    enabled = len(result.enabled())
    parts = [f"{len(result.playbooks)} playbooks ({enabled} enabled), {steps} steps"]
    if stages is not None:
        parts.append(f"{playbooks.STAGES_FILE} valid")
    if library is None:
        parts.append("reply ids not checked (no content library)")
    print(f"OK {directory}: " + ", ".join(parts) + f"; digest {result.digest[:12]}")
    return 0


def _stages(directory: Path, problems: list[errors.ContentError]) -> tuple[Any, Collection[str] | None]:
    """The stages config and its stage names, when stages.yaml and bot/lifecycle.py both exist."""
    path = directory / playbooks.STAGES_FILE
    if not path.exists():
        return None, None
    try:
        # Imported here: the lifecycle module is optional for validating playbooks alone.
        from bot import lifecycle  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None, None
    try:
        config = lifecycle.load_stages(path)
    except errors.ContentErrors as exc:
        problems.extend(
            errors.ContentError(playbooks.STAGES_FILE, e.line, e.reason)
            if Path(e.file).name == playbooks.STAGES_FILE
            else e
            for e in exc.errors
        )
        return None, None
    return config, _stage_names(lifecycle, config)


def _stage_names(module: Any, config: Any) -> Collection[str] | None:
    """The stage names the lifecycle knows; None when they cannot be read."""
    names = getattr(module, "STAGES", None) or getattr(config, "names", None)
    if callable(names):
        names = names()
    if names is None:
        stages = getattr(config, "stages", None)
        if isinstance(stages, dict):
            names = list(stages)
        elif isinstance(stages, list | tuple):
            names = [getattr(s, "name", None) or getattr(s, "id", None) for s in stages]
    if not names or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names)


def _content_dir(args: argparse.Namespace) -> Path | None:
    if getattr(args, "content_dir", None):
        return Path(args.content_dir)
    try:
        return Path(load_settings(getattr(args, "config", None)).content.dir)
    except errors.ConfigError:
        # No usable settings (e.g. CI on an ops pull request): fall back to the conventional path.
        fallback = Path("content_library")
        return fallback if fallback.is_dir() else None


# ------------------------------------------------------------------------------------------ simulate

_WEEKDAYS = "一二三四五六日"
_HEAD = 40
"""Characters of a step's text shown on its send line."""
_MAX_DECISIONS = 10_000
"""A guard: no sensible playbook needs more decisions than this in a simulation."""

ROUTE_NAMES = profile.ROUTE_NAMES

_RELATIVE = re.compile(r"day\s*(\d+)\s+(\d{1,2}):(\d{2})(?:\s+(.*))?", re.IGNORECASE | re.DOTALL)
_ABSOLUTE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::\d{2})?(?:\s+(.*))?", re.DOTALL)


_REPLY_SHAPE = "'dayN HH:MM TEXT' or 'YYYY-MM-DD HH:MM TEXT', e.g. 'day2 10:30 好的'"
_CLICK_SHAPE = "'dayN HH:MM' or 'YYYY-MM-DD HH:MM', e.g. 'day3 21:00'"


class SimulationError(ValueError):
    """A simulation input (an option or the customer file) that cannot be used; the message says why."""


@dataclass(frozen=True)
class Reaction:
    """A scripted reply or click at a moment of the simulation."""

    at: dt.datetime
    kind: str  # reply | click
    text: str = ""


def parse_moment(
    text: str, start: dt.datetime, what: str, shape: str = "'dayN HH:MM' or 'YYYY-MM-DD HH:MM'"
) -> tuple[dt.datetime, str]:
    """`dayN HH:MM [rest]` (day 0 = the start's day) or `YYYY-MM-DD HH:MM [rest]`, in start's zone."""
    text = text.strip()
    match = _RELATIVE.fullmatch(text)
    try:
        if match:
            day, hour, minute, rest = match.groups()
            at = dt.datetime.combine(
                start.date() + dt.timedelta(days=int(day)), dt.time(int(hour), int(minute)), start.tzinfo
            )
            return at, (rest or "").strip()
        match = _ABSOLUTE.fullmatch(text)
        if match:
            year, month, day_, hour, minute, rest = match.groups()
            at = dt.datetime(int(year), int(month), int(day_), int(hour), int(minute), tzinfo=start.tzinfo)
            return at, (rest or "").strip()
    except ValueError as exc:  # hour 25, month 13, ...
        raise SimulationError(f"{what} {text!r}: {exc}") from exc
    raise SimulationError(f"{what} {text!r}: expected {shape} (day 0 = the enrollment day)")


def parse_reactions(
    replies: Sequence[str], clicks: Sequence[str], start: dt.datetime
) -> tuple[Reaction, ...]:
    """The scripted reactions in time order; SimulationError names the bad option and why."""
    out: list[Reaction] = []
    for spec in replies:
        at, text = parse_moment(spec, start, "--replies", _REPLY_SHAPE)
        if not text:
            raise SimulationError(f"--replies {spec.strip()!r}: what did she write? expected {_REPLY_SHAPE}")
        out.append(Reaction(at, "reply", text))
    for spec in clicks:
        at, rest = parse_moment(spec, start, "--clicks", _CLICK_SHAPE)
        if rest:
            raise SimulationError(f"--clicks {spec.strip()!r}: a click has no text; expected {_CLICK_SHAPE}")
        out.append(Reaction(at, "click"))
    for reaction in out:
        if reaction.at < start:
            kind = "--replies" if reaction.kind == "reply" else "--clicks"
            raise SimulationError(f"{kind}: {_fmt(reaction.at)} is before the start {_fmt(start)}")
    return tuple(sorted(out, key=lambda r: r.at))


def _text(value: Any) -> Any:
    # YAML reads 2026-03-01 as a date and 3 as a number; attributes are stored as text.
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date | int | float) and not isinstance(value, bool):
        return str(value)
    return value


Moment = Annotated[str, BeforeValidator(_text)]


class SimKf(BaseModel):
    """Her kf (WeChat customer service) session: route `kf` works within 48 h of her last message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    open_kfid: str = Field(min_length=1)
    last_message_at: Moment


class SimCustomer(BaseModel):
    """A described customer: the facts the runner would read from the database."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = "wm_simulated"
    name: str = ""
    guide: str = ""
    stage: str = ""
    stage_since: Moment | None = None
    tags: tuple[str, ...] = ()
    attributes: dict[str, Annotated[str, BeforeValidator(_text)]] = Field(default_factory=dict)
    lead_score: int = 0
    unsubscribed: bool = False
    kf: SimKf | None = None
    channel: str = ""
    added_at: Moment | None = None
    last_message_at: Moment | None = None


def load_customer(path: Path) -> SimCustomer:
    """Read a customer file; raises ContentErrors as `file:line: reason`."""
    name = str(path)
    try:
        loaded = yamlfile.load_text(path.read_text(encoding="utf-8"), name)
    except OSError as exc:
        raise errors.ContentErrors([errors.ContentError(name, None, f"cannot read: {exc.strerror}")]) from exc
    except errors.ContentError as exc:
        raise errors.ContentErrors([exc]) from exc
    if loaded.problems:
        raise errors.ContentErrors(list(loaded.problems))
    try:
        return SimCustomer.model_validate(loaded.data if loaded.data is not None else {})
    except ValidationError as exc:
        raise errors.ContentErrors(yamlfile.problems_from(exc, loaded)) from exc


@dataclass
class _SimState:
    """What changes about the customer while the simulation runs."""

    last_message_at: float | None
    unsubscribed_at: float | None
    kf_last_at: dt.datetime | None
    sends: list[tuple[str, float]] = field(default_factory=list)
    linked: bool = False  # a link went out: a click on it can reach the run
    last_route: str = ""


def simulate(
    playbook: playbooks.Playbook,
    customer: SimCustomer,
    settings: policy.PolicySettings,
    *,
    start: dt.datetime,
    days: int,
    reactions: Iterable[Reaction] = (),
    library: content.ContentSnapshot | None = None,
    texts: Any = None,
) -> list[str]:
    """The timeline of one run of `playbook` for `customer` from `start`, one line per event."""
    from bot.sop_runner import LIVE, Texts
    from handlers.sop_decide import RunView, decide_run

    tz = settings.zone
    start = start.astimezone(tz)
    end = start + dt.timedelta(days=days)
    texts = texts if texts is not None else Texts("", {})
    added = _moment(customer.added_at, start, "added_at") if customer.added_at else start
    state = _SimState(
        last_message_at=(
            _moment(customer.last_message_at, start, "last_message_at").timestamp()
            if customer.last_message_at
            else None
        ),
        unsubscribed_at=added.timestamp() if customer.unsubscribed else None,
        kf_last_at=_moment(customer.kf.last_message_at, start, "kf.last_message_at") if customer.kf else None,
    )
    guide_name, store = texts.guides.get(customer.guide, ("", ""))
    lines = _header(playbook, customer, settings, start, days, guide_name, store)

    def line(at: dt.datetime, what: str) -> None:
        lines.append(f"{_fmt(at)} 第{(at.date() - start.date()).days}天  {what}")

    facts = _sim_facts(customer, state, added, start, tz)
    if playbook.when is not None and not playbook.when.evaluate(facts):
        line(start, f"不报名：不满足剧本的报名条件 {playbook.when.text}")
        return lines
    stage_triggers = [t.stage_entered for t in playbook.trigger if t.stage_entered is not None]
    enrolled_stage = customer.stage if customer.stage in stage_triggers else ""
    if stage_triggers and len(stage_triggers) == len(playbook.trigger) and not enrolled_stage:
        line(
            start,
            f"注意：本剧本在客户进入阶段 {'/'.join(stage_triggers)} 时报名，"
            f"客户文件的阶段是 {customer.stage or '无'}；照常模拟",
        )
    first = playbook.first_step
    run = RunView(
        1,
        customer.id,
        playbook.id,
        1,
        enrolled_stage,
        start.timestamp(),
        first.id,
        "due",
        first.due_at(start, None, tz).timestamp(),
        start.timestamp(),
    )
    line(start, f"报名：第一步 {first.id}，{_fmt_due(run.due_at, tz)} 到期")
    pending = list(reactions)
    counts: Counter[str] = Counter()
    decisions = 0
    while run.state in LIVE:
        due = dt.datetime.fromtimestamp(run.due_at, tz)
        if pending and pending[0].at <= due and pending[0].at <= end:
            reaction = pending.pop(0)
            run = _react(run, reaction, state, customer, settings, line)
            continue
        if due > end:
            line(end, f"模拟结束（{days} 天）：{run.step_id} 仍{_live_state(run.state)}，{_fmt(due)} 到期")
            break
        decisions += 1
        if decisions > _MAX_DECISIONS:
            raise SimulationError(f"more than {_MAX_DECISIONS} decisions: the run does not move on")
        view = _customer_view(customer, state, added, due, settings)
        outcome = decide_run(run, playbook, view, settings, due)
        for entry in outcome.log:
            counts[entry.outcome] += 1
            what = _describe(entry, outcome, playbook, view, library, texts, tz)
            if entry.outcome == "sent":
                counts[f"route:{entry.route}"] += 1
                state.sends.append((entry.route, due.timestamp()))
                state.last_route = entry.route
                state.linked = state.linked or (
                    outcome.send is not None and outcome.send.content.link is not None
                )
            line(due, what)
        run = run._replace(
            state=outcome.state,
            step_id=outcome.step_id,
            due_at=outcome.due_at,
            step_reached_at=outcome.step_reached_at,
            reaction="",
        )
    sent = counts["sent"]
    by_route = "，".join(
        f"{ROUTE_NAMES[r]} {counts[f'route:{r}']}" for r in playbooks.ROUTES if counts[f"route:{r}"]
    )
    result = {"done": "走完", "exited": "退出"}.get(run.state, "进行中")
    lines.append(
        f"汇总：发送 {sent} 条"
        + (f"（{by_route}）" if by_route else "")
        + f"；顺延 {counts['deferred']} 次；跳过 {counts['skipped']} 步；结果：{result}"
    )
    return lines


def _header(
    playbook: playbooks.Playbook,
    customer: SimCustomer,
    settings: policy.PolicySettings,
    start: dt.datetime,
    days: int,
    guide_name: str,
    store: str,
) -> list[str]:
    who = customer.name or "（无昵称）"
    guide = customer.guide or "无"
    if guide_name:
        guide = f"{guide_name}·{store}" if store else guide_name
    quiet = settings.quiet_hours
    return [
        f"剧本 {playbook.id}「{playbook.name}」 × 客户 {who}（{customer.id}，导购 {guide}，"
        f"阶段 {customer.stage or '无'}）",
        f"从 {_fmt(start)} 起模拟 {days} 天，不连接企业微信；免打扰 {quiet.start}–{quiet.end}，"
        f"每天最多 {settings.customer_daily_cap} 条、每周最多 {settings.customer_weekly_cap} 条"
        f"（{settings.timezone}）",
    ]


def _react(
    run: Any,
    reaction: Reaction,
    state: _SimState,
    customer: SimCustomer,
    settings: policy.PolicySettings,
    line: Any,
) -> Any:
    """Apply a scripted reaction the way bot/effects.py `_record_reactions` does: a waiting run wakes now."""
    at = reaction.at
    if reaction.kind == "reply":
        state.last_message_at = at.timestamp()
        if customer.kf is not None and state.last_route == "kf":
            state.kf_last_at = at  # she answered in the kf session the step came by: its window reopens
        what = f"客户回复：“{reaction.text}”"
        notes = []
        change = policy.opt_reply(reaction.text, state.unsubscribed_at is not None, settings)
        if change is not None:
            state.unsubscribed_at = at.timestamp() if change.unsubscribed else None
            notes.append("退订，营销推送停止" if change.unsubscribed else "恢复订阅")
    else:
        what = "客户点击了链接"
        notes = []
        if not state.linked:
            line(at, what + "（这次运行还没有发出链接，不算点击）")
            return run
    waking = run.state == "waiting" and not run.reaction
    if not waking:
        notes.append("没有等待回应的步骤，不影响分支")
    line(at, what + (f"（{'；'.join(notes)}）" if notes else ""))
    return run._replace(reaction=reaction.kind, due_at=at.timestamp()) if waking else run


def _customer_view(
    customer: SimCustomer,
    state: _SimState,
    added: dt.datetime,
    now: dt.datetime,
    settings: policy.PolicySettings,
) -> Any:
    """The CustomerView the runner would load at `now` (history counted like sop_runner.load_customers)."""
    from bot.sop_runner import send_counts
    from handlers.sop_decide import CustomerView

    windows = policy.windows(now, settings)
    day = windows.day[0].timestamp()
    sends = state.sends
    guide_tasks = sum(1 for r, at in sends if r in ("mass_task", "guide_notify") and at >= day)
    # A message the file dates after `now` has not been written yet at `now`.
    kf_last = state.kf_last_at if state.kf_last_at is not None and state.kf_last_at <= now else None
    kf_since = kf_last.timestamp() if kf_last is not None else None
    history = policy.SendHistory(
        **send_counts(sends, windows),
        guide_tasks_today=guide_tasks,
        unsubscribed=state.unsubscribed_at is not None,
        kf_last_customer_message_at=kf_last,
        kf_sent_since=sum(1 for r, at in sends if r == "kf" and kf_since is not None and at >= kf_since),
    )
    return CustomerView(
        customer.id,
        _sim_facts(customer, state, added, now, settings.zone),
        guide=customer.guide,
        open_kfid=customer.kf.open_kfid if customer.kf is not None else "",
        history=history,
    )


def _sim_facts(
    customer: SimCustomer, state: _SimState, added: dt.datetime, now: dt.datetime, tz: dt.tzinfo
) -> dict[str, Any]:
    """The facts bot/sop_runner.py `facts()` builds, from the customer file and what happened so far."""
    from bot.profile import derive
    from bot.sop_runner import facts
    from bot.store.models import Customer

    stage_since = _moment(customer.stage_since, added, "stage_since") if customer.stage_since else added
    row = Customer(
        external_userid=customer.id,
        name=customer.name,
        first_state=customer.channel,
        lead_score=customer.lead_score,
        first_seen_at=added.timestamp(),
        updated_at=added.timestamp(),
        stage=customer.stage,
        stage_since=stage_since.timestamp(),
        last_message_at=(
            state.last_message_at
            if state.last_message_at is not None and state.last_message_at <= now.timestamp()
            else None
        ),
        unsubscribed_at=state.unsubscribed_at,
    )
    today = now.astimezone(tz).date()
    attributes: dict[str, Any] = {}
    for key, value in customer.attributes.items():
        attributes[key] = value
        attributes.update(derive(key, value, today))
    return facts(row, list(customer.tags), attributes, customer.guide, {}, now.timestamp())


def _describe(
    entry: Any,
    outcome: Any,
    playbook: playbooks.Playbook,
    customer: Any,
    library: content.ContentSnapshot | None,
    texts: Any,
    tz: dt.tzinfo,
) -> str:
    """One timeline line for a log entry of decide_run."""
    if entry.outcome == "sent":
        step = playbook.step(entry.step_id)
        route = ROUTE_NAMES.get(entry.route, entry.route)
        what = f"{entry.step_id}  发送（{route}）：{_head(step, customer, library, texts)}"
        if outcome.state == "waiting" and step.wait is not None:
            what += f"；等待回应到 {_fmt_due(outcome.due_at, tz)}"
        return what
    if entry.outcome == "deferred":
        return f"{entry.step_id}  顺延：{entry.detail}"
    if entry.outcome == "skipped":
        return f"{entry.step_id}  跳过：{entry.detail}"
    if entry.outcome == "branched":
        target = (
            f"{outcome.step_id}（{_fmt_due(outcome.due_at, tz)} 到期）" if outcome.state == "due" else "结束"
        )
        return f"{entry.step_id}  分支：{entry.detail} → {target}"
    if entry.outcome == "exited":
        return f"{entry.step_id}  退出剧本：{_exit_reason(entry.detail)}"
    if entry.outcome == "done":
        return f"{entry.step_id}  剧本结束：全部步骤已走完"
    return f"{entry.step_id}  {entry.outcome} {entry.reason} {entry.detail}".rstrip()


def _head(step: playbooks.Step, customer: Any, library: content.ContentSnapshot | None, texts: Any) -> str:
    """The start of the step's rendered text, and its attachments by kind and title."""
    guide_name, store = texts.guides.get(customer.guide, ("", ""))
    values = {
        "brand": texts.brand,
        "customer_name": str(customer.facts.get("customer_name") or ""),
        "guide_name": guide_name,
        "store": store,
    }
    try:
        text = content.render(step.content.resolve_text(library), values)
    except KeyError:
        text = f"［内容 reply: {step.content.reply} 在内容库中找不到］"
    text = " ".join(text.split())
    head = text if len(text) <= _HEAD else text[:_HEAD] + "…"
    body = step.content
    if body.image is not None:
        head += " ［图片］"
    if body.link is not None:
        head += f" ［链接：{body.link.title}］"
    if body.miniprogram is not None:
        head += f" ［小程序：{body.miniprogram.title}］"
    return head


_EXIT_REASONS = (
    (re.compile(r"unsubscribed"), "客户已退订"),
    (re.compile(r"left stage (.+)"), r"客户离开了阶段 \1"),
    (re.compile(r"entered stage (.+)"), r"客户进入了阶段 \1"),
    (re.compile(r"tag (.+)"), r"客户有标签 \1"),
    (re.compile(r"exit condition (.+)"), r"满足退出条件 \1"),
)


def _exit_reason(detail: str) -> str:
    """playbooks.Exit.reason's words for ops."""
    for pattern, words in _EXIT_REASONS:
        if pattern.fullmatch(detail):
            return pattern.sub(words, detail)
    return detail


def _moment(text: str, start: dt.datetime, what: str) -> dt.datetime:
    at, rest = parse_moment(text, start, what)
    if rest:
        raise SimulationError(f"{what} {text!r}: expected 'YYYY-MM-DD HH:MM' or 'dayN HH:MM'")
    return at


def _live_state(state: str) -> str:
    return "在等待回应" if state == "waiting" else "待发送"


def _fmt(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d} 周{_WEEKDAYS[at.weekday()]} {at:%H:%M}"


def _fmt_due(ts: float, tz: dt.tzinfo) -> str:
    at = dt.datetime.fromtimestamp(ts, tz)
    return f"{at:%m-%d %H:%M}"


def cmd_simulate(args: argparse.Namespace) -> int:
    """Print the timeline of one playbook for one described customer; 1 on invalid files, 2 on bad options."""
    from bot.runtime import sop_texts

    policy_settings, content_dir = _simulation_settings(args)
    path = Path(args.playbook)
    if path.name == playbooks.STAGES_FILE:
        print(f"siyu: {path} holds the stages, not a playbook", file=sys.stderr)
        return 2
    library = None
    if content_dir is not None:
        try:
            library = content.load_library(content_dir)
        except errors.ContentErrors:
            print(
                f"siyu: content library {content_dir} is invalid: `reply:` texts not shown", file=sys.stderr
            )
    problems: list[errors.ContentError] = []
    playbook = None
    try:
        text = path.read_text(encoding="utf-8")
        playbook = playbooks.load_playbooks_from_texts({path.name: text}, library).playbooks[0]
    except OSError as exc:
        problems.append(errors.ContentError(str(path), None, f"cannot read: {exc.strerror}"))
    except errors.ContentErrors as exc:
        problems += [errors.ContentError(str(path.parent / e.file), e.line, e.reason) for e in exc.errors]
    customer = None
    try:
        customer = load_customer(Path(args.customer))
    except errors.ContentErrors as exc:
        problems += exc.errors
    if problems:
        for error in problems:
            print(
                f"{error.file}:{error.line}: {error.reason}"
                if error.line
                else f"{error.file}: {error.reason}"
            )
        print(f"{len(problems)} error(s)")
        return 1
    assert playbook is not None and customer is not None
    tz = policy_settings.zone
    try:
        if args.days < 1:
            raise SimulationError(f"--days {args.days}: simulate at least one day")
        anchor = dt.datetime(2000, 1, 1, tzinfo=tz)
        if args.start:
            start = _moment(args.start, anchor, "--start")
        elif customer.added_at:
            start = _moment(customer.added_at, anchor, "added_at")
        else:
            raise SimulationError(
                "when does the run start? give --start 'YYYY-MM-DD HH:MM' or added_at in the file"
            )
        reactions = parse_reactions(args.replies, args.clicks, start)
        lines = simulate(
            playbook,
            customer,
            policy_settings,
            start=start,
            days=args.days,
            reactions=reactions,
            library=library,
            texts=sop_texts(library),
        )
    except SimulationError as exc:
        print(f"siyu: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _simulation_settings(args: argparse.Namespace) -> tuple[policy.PolicySettings, Path | None]:
    """The manners and the content library directory; defaults when there are no settings."""
    try:
        settings = load_settings(getattr(args, "config", None))
    except errors.ConfigError:
        # Ops checking a playbook need no service settings: the default manners apply.
        fallback = Path("content_library")
        directory = Path(args.content_dir) if args.content_dir else fallback if fallback.is_dir() else None
        return policy.PolicySettings(), directory
    return settings.sop.policy, Path(args.content_dir or settings.content.dir)


# -------------------------------------------------------------------------------------------- status


@dataclass
class StepStatus:
    """What happened at one step of a playbook, across every customer."""

    due: int = 0
    waiting: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # by route
    deferred: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    exited: int = 0
    done: int = 0
    failed: int = 0


@dataclass
class PlaybookStatus:
    """Runs of one playbook by state, and its steps."""

    runs: Counter[str] = field(default_factory=Counter)  # by state
    steps: dict[str, StepStatus] = field(default_factory=dict)

    def step(self, step_id: str) -> StepStatus:
        """The step's counts, created on first use."""
        return self.steps.setdefault(step_id, StepStatus())


_SEND_KEYS = ("mass:%", "notify:sop:%", "kf:reply:%:sop:%")
"""Outbox idempotency keys of SOP sends (bot/sop_runner.py `_send`)."""


def send_key_step(idem_key: str) -> tuple[str, str] | None:
    """(playbook, step) of an SOP send's outbox key `…{customer}:{playbook}:{step}:{iteration}`, or None."""
    if idem_key.startswith("mass:"):
        rest = idem_key[len("mass:") :]
    elif idem_key.startswith("notify:sop:"):
        rest = idem_key[len("notify:sop:") :]
    elif idem_key.startswith("kf:reply:") and ":sop:" in idem_key:
        rest = idem_key.split(":sop:", 1)[1]
    else:
        return None
    parts = rest.rsplit(":", 3)
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[1], parts[2]


async def load_status(sessions: Any) -> dict[str, PlaybookStatus]:
    """Counts per playbook and step from enrollments, sop_log and failed outbox rows (a few GROUP BYs)."""
    from sqlalchemy import func, or_, select

    from bot.store.models import Enrollment, OutboxRow, SopLog

    out: dict[str, PlaybookStatus] = {}

    def of(playbook_id: str) -> PlaybookStatus:
        return out.setdefault(playbook_id, PlaybookStatus())

    async with sessions() as session:
        rows = await session.execute(
            select(Enrollment.playbook_id, Enrollment.step_id, Enrollment.state, func.count()).group_by(
                Enrollment.playbook_id, Enrollment.step_id, Enrollment.state
            )
        )
        for playbook_id, step_id, state, count in rows:
            status = of(playbook_id)
            status.runs[state] += count
            if state == "due":
                status.step(step_id).due += count
            elif state == "waiting":
                status.step(step_id).waiting += count
        columns = (SopLog.playbook_id, SopLog.step_id, SopLog.outcome, SopLog.route, SopLog.reason)
        rows = await session.execute(select(*columns, func.count()).group_by(*columns))
        for playbook_id, step_id, outcome, route, reason, count in rows:
            step = of(playbook_id).step(step_id)
            if outcome == "sent":
                step.sent[route or "?"] += count
            elif outcome == "deferred":
                step.deferred += count
            elif outcome == "skipped":
                step.skipped[reason or "?"] += count
            elif outcome == "exited":
                step.exited += count
            elif outcome == "done":
                step.done += count
            elif outcome == "failed":  # the run broke (bot/sop_runner.py failed_outcome)
                step.failed += count
        keys = await session.scalars(
            select(OutboxRow.idem_key).where(
                OutboxRow.status == "failed", or_(*(OutboxRow.idem_key.like(k) for k in _SEND_KEYS))
            )
        )
        for key in keys:
            found = send_key_step(key)
            if found is not None:
                of(found[0]).step(found[1]).failed += 1
    return out


def render_status(
    stats: dict[str, PlaybookStatus], known: dict[str, tuple[str, tuple[str, ...]]]
) -> list[str]:
    """Lines per playbook (those in sop/ first, in file order) and per step (in playbook order)."""
    if not stats and not known:
        return ["没有剧本，也没有报名记录"]
    lines: list[str] = []
    for playbook_id in [*known, *sorted(p for p in stats if p not in known)]:
        name, step_ids = known.get(playbook_id, ("", ()))
        status = stats.get(playbook_id, PlaybookStatus())
        runs = status.runs
        title = f"{playbook_id}「{name}」" if name else f"{playbook_id}（不在 sop/ 中）"
        total = sum(runs.values())
        if not total and not status.steps:
            lines.append(f"{title}  还没有客户报名")
            continue
        live = runs["due"] + runs["waiting"]
        lines.append(
            f"{title}  报名 {total}：进行中 {live}（待发 {runs['due']}，等待回应 {runs['waiting']}），"
            f"走完 {runs['done']}，退出 {runs['exited']}"
            + (f"，出错停止 {runs['failed']}" if runs["failed"] else "")
        )
        order = [*step_ids, *sorted(s for s in status.steps if s not in step_ids)]
        width = max(len(s) for s in order)
        for step_id in order:
            step = status.steps.get(step_id, StepStatus())
            sent = sum(step.sent.values())
            by_route = "，".join(f"{r} {n}" for r, n in sorted(step.sent.items()))
            skipped = sum(step.skipped.values())
            by_reason = "，".join(f"{r} {n}" for r, n in sorted(step.skipped.items()))
            mark = "" if step_id in step_ids or not step_ids else "（已删除）"
            lines.append(
                f"  {step_id:<{width}}{mark}  待发 {step.due}  等待 {step.waiting}  "
                f"已发 {sent}"
                + (f"（{by_route}）" if by_route else "")
                + f"  顺延 {step.deferred}  跳过 {skipped}"
                + (f"（{by_reason}）" if by_reason else "")
                + f"  退出 {step.exited}  走完 {step.done}  发送失败 {step.failed}"
            )
    return lines


def _known_playbooks(directory: str | Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Playbook id -> (name, step ids) from sop/, in file order; {} when it cannot be read."""
    try:
        loaded = playbooks.load_playbooks(directory)
    except errors.ContentErrors:
        # An invalid edit does not hide the numbers: playbooks are listed by id from the database.
        return {}
    return {p.id: (p.name, tuple(s.id for s in p.steps)) for p in loaded.playbooks}


def cmd_status(args: argparse.Namespace) -> int:
    """Print per playbook and step: live runs, sent by route, deferred, skipped by reason, exits, failures."""
    from bot.store import db

    settings = load_settings(getattr(args, "config", None))
    known = _known_playbooks(settings.sop.dir)

    async def run() -> dict[str, PlaybookStatus]:
        engine = db.create_engine(settings.database.url)
        try:
            await db.prepare(engine, auto_upgrade=db.is_sqlite(settings.database.url))
            return await load_status(db.sessionmaker(engine))
        finally:
            await engine.dispose()

    print("\n".join(render_status(asyncio.run(run()), known)))
    return 0
