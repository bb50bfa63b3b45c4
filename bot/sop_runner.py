"""Runs SOP playbooks: claims due enrollments, decides each, and commits sends and state at once.

`run_due(now)` claims up to `sop.batch_size` runs whose `due_at` has come (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so any number of replicas share the work; SQLite has one writer), loads
what the decisions need for the whole batch in a few queries, asks `handlers.sop_decide.decide_run`
about each run, and in the same transaction writes the sends to the outbox (idempotency key:
customer, playbook, step, iteration), the log and the runs' new state. A crash before the commit
leaves the runs due and nothing sent; a replayed send hits its outbox key. Memory is O(batch).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import String, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bot import actions as act
from bot import links, metrics, policy
from bot.clock import Clock
from bot.config import Settings
from bot.content import render
from bot.effects import Effects
from bot.playbooks import PlaybookSet, Step
from bot.profile import derive
from bot.sop_inflight import Batch, InFlight
from bot.store.db import Sessions
from bot.store.models import (
    ChannelCode,
    ClickLink,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Enrollment,
    Follow,
    KfSession,
    SopLog,
)
from bot.store.sql import for_claim, insert_rows, update_rows
from handlers.sop_decide import CustomerView, LogEntry, RunOutcome, RunView, decide_run
from handlers.welcome import wecom_attachment

_LOGGER = logging.getLogger(__name__)

LIVE = ("due", "waiting")
# Literal, not bound: PostgreSQL uses the partial index ix_enrollments_live_due only when it can
# see that the query's predicate is the index's.
LIVE_SQL = text("enrollments.state IN ('due', 'waiting')")


@dataclass
class Decided:
    """What a batch's decisions write besides the sends: run states, log lines, tracked links."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    tally: dict[str, int] = field(default_factory=dict)

    def add(self, run: RunView, outcome: RunOutcome, marketing: bool, guide: str, now: float) -> None:
        """Record `run`'s outcome: its new state and one log line per entry."""
        self.updates.append(
            {
                "id": run.id,
                "state": outcome.state,
                "step_id": outcome.step_id,
                "due_at": outcome.due_at,
                "step_reached_at": outcome.step_reached_at,
                "reason": outcome.reason[:255],
                "reaction": "",  # a reaction is used up by the decision that read it
                "updated_at": now,
            }
        )
        for entry in outcome.log:
            self.log.append(
                {
                    "enrollment_id": run.id,
                    "external_userid": run.external_userid,
                    "playbook_id": run.playbook_id,
                    "step_id": entry.step_id,
                    "outcome": entry.outcome,
                    "route": entry.route,
                    "reason": entry.reason[:32],
                    "detail": entry.detail[:255],
                    "marketing": marketing,
                    "userid": guide if entry.outcome == "sent" else "",
                    "at": now,
                }
            )
            self.tally[entry.outcome] = self.tally.get(entry.outcome, 0) + 1


@dataclass(frozen=True)
class Texts:
    """Variables for SOP content: brand, and the guides' names and stores."""

    brand: str
    guides: dict[str, tuple[str, str]]


class SopRunner:
    """Claims due runs and turns their decisions into sends, log lines and new run states."""

    def __init__(
        self,
        sessions: Sessions,
        effects: Effects,
        clock: Clock,
        settings: Settings,
        playbooks: Callable[[], PlaybookSet | None],
        texts: Callable[[], Texts],
        content: Callable[[], Any] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._effects = effects
        self._clock = clock
        self._settings = settings
        self._playbooks = playbooks
        self._texts = texts
        self._content = content
        self._in_flight = InFlight()

    @property
    def wakeup(self) -> Any:
        """Set when new runs (or reactions) were committed."""
        return self._effects.sop_wakeup

    async def run_due(self, now: float | None = None) -> int:
        """Claim and run one batch of due runs; returns how many were handled."""
        now = self._clock.timestamp() if now is None else now
        playbooks = self._playbooks()
        if playbooks is None:
            return 0
        actions: list[act.Action] = []
        with self._in_flight.batch() as batch:
            async with self._sessions.begin() as session:
                runs = await self._claim(session, now, self._settings.sop.batch_size)
                if not runs:
                    return 0
                batch.mark_read()
                views = await load_customers(session, [r.external_userid for r in runs], now, self._settings)
                decided = self._decide_batch(runs, views, playbooks, batch, now, actions)
                await self._write(session, decided, actions)
            self._in_flight.committed(batch)
        self._effects.after_commit(actions)
        for outcome_name, count in decided.tally.items():
            metrics.SOP_STEPS.labels(outcome_name).inc(count)
        return len(runs)

    def _decide_batch(
        self,
        runs: list[RunView],
        views: dict[str, CustomerView],
        playbooks: PlaybookSet,
        batch: Batch,
        now: float,
        actions: list[act.Action],
    ) -> Decided:
        """Decide every run of the batch; sends go to `actions`, the rest to the returned rows."""
        at = dt.datetime.fromtimestamp(now, policy_zone(self._settings))
        decided = Decided()
        for run in runs:
            customer = views.get(run.external_userid) or CustomerView(run.external_userid, {})
            # Her guide's budget is shared by all her customers, in this batch and the others.
            customer = with_guide_tasks(customer, batch.tasks(customer.guide))
            playbook = playbooks.get(run.playbook_id)
            try:
                outcome = decide_run(run, playbook, customer, self._settings.sop.policy, at)
                sends = (
                    self._send(run, customer, outcome, playbook.marketing, now, decided.links)
                    if outcome.send is not None and playbook is not None
                    else []
                )
            except Exception as exc:
                # One broken run (a bad edit, a bug) must not hold back the batch forever: it
                # stops, recorded, and `siyu sop status` shows it.
                _LOGGER.exception(
                    "sop run failed", extra={"enrollment_id": run.id, "playbook": run.playbook_id}
                )
                outcome = failed_outcome(run, now, exc)
                sends = []
            if sends:
                actions.extend(sends)
                views[run.external_userid] = counted(views.get(run.external_userid, customer), outcome.route)
                if outcome.route in GUIDE_ROUTES:
                    batch.give(customer.guide)
            marketing = playbook.marketing if playbook is not None else True
            decided.add(run, outcome, marketing, customer.guide, now)
        return decided

    async def _write(self, session: AsyncSession, decided: Decided, actions: list[act.Action]) -> None:
        """The runs' new state, their log lines and links, and the sends, in the caller's transaction."""
        await update_rows(session, Enrollment.__table__, decided.updates)
        await insert_rows(session, SopLog.__table__, decided.log)
        await insert_rows(session, ClickLink.__table__, decided.links)
        await self._effects.apply_batch(session, [(actions, "sop")])

    async def next_due(self) -> float | None:
        """Epoch seconds of the earliest live run (for the serve loop's wait)."""
        async with self._sessions() as session:
            return await session.scalar(select(func.min(Enrollment.due_at)).where(LIVE_SQL))

    async def _claim(self, session: AsyncSession, now: float, limit: int) -> list[RunView]:
        t = Enrollment.__table__.c
        # Plain rows, not ORM objects: a claim of 500 runs should not build 500 mapped instances.
        query = (
            select(
                t.id,
                t.external_userid,
                t.playbook_id,
                t.iteration,
                t.enrolled_stage,
                t.enrolled_at,
                t.step_id,
                t.state,
                t.due_at,
                t.step_reached_at,
                t.reaction,
            )
            .where(LIVE_SQL, t.due_at <= now)
            .order_by(t.due_at)
            .limit(limit)
        )
        rows = (await session.execute(for_claim(session, query))).all()
        if rows and session.bind is not None and session.bind.dialect.name == "postgresql":
            # Caps count a customer's sends across playbooks, so one customer's runs must be decided
            # by one worker at a time: a run whose customer another worker holds waits for the
            # next round (the lock ends with the transaction).
            customers = sorted({r.external_userid for r in rows})
            held = await session.execute(
                text(
                    "SELECT c, pg_try_advisory_xact_lock(hashtextextended(c, 7411))"
                    " FROM unnest(CAST(:cs AS text[])) AS c"
                ),
                {"cs": customers},
            )
            mine = {c for c, ok in held if ok}
            rows = [r for r in rows if r.external_userid in mine]
        return [RunView(*r) for r in rows]

    def _send(
        self,
        run: RunView,
        customer: CustomerView,
        outcome: RunOutcome,
        marketing: bool,
        now: float,
        link_rows: list[dict[str, Any]],
    ) -> list[act.Action]:
        step = outcome.send
        assert step is not None
        key = f"{run.external_userid}:{run.playbook_id}:{step.id}:{run.iteration}"
        text, attachments = self._content_of(step, customer, run, key, now, link_rows)
        if outcome.route == "kf":
            body = text
            for item in attachments:
                if item["msgtype"] == "link":
                    body += f"\n{item['link'].get('title', '')}：{item['link']['url']}"
            return [
                act.SendKfText(customer.open_kfid, run.external_userid, body, reply_to=f"sop:{key}"),
                act.UpdateKfSession(customer.open_kfid, run.external_userid, now, sent=1),
            ]
        if outcome.route == "mass_task":
            return [
                act.CreateMassTask(
                    key, run.external_userid, customer.guide, text, tuple(attachments), run.id, step.id
                )
            ]
        name = customer.facts.get("customer_name") or run.external_userid
        sidebar = f"{self._settings.service.public_url.rstrip('/')}/sidebar?customer={run.external_userid}"
        notice = f"【跟进提醒】请给客户「{name}」发送：\n{text}\n打开侧边栏：{sidebar}"
        return [act.NotifyStaff((customer.guide,), notice, key=f"sop:{key}")]

    def _content_of(
        self,
        step: Step,
        customer: CustomerView,
        run: RunView,
        key: str,
        now: float,
        link_rows: list[dict[str, Any]],
    ) -> tuple[str, list[dict[str, Any]]]:
        texts = self._texts()
        guide_name, store = texts.guides.get(customer.guide, ("", ""))
        values = {
            "brand": texts.brand,
            "customer_name": str(customer.facts.get("customer_name") or ""),
            "guide_name": guide_name,
            "store": store,
        }
        text = render(step.content.resolve_text(self._content()), values)
        library = self._settings.content.dir
        attachments = []
        for item in step.content.attachments():
            payload = wecom_attachment(item, Path(library))
            if payload["msgtype"] == "link":
                # Links go through /r/<token>: the click is recorded, then redirected.
                token = links.new_token()
                link_rows.append(
                    {
                        "token": token,
                        "enrollment_id": run.id,
                        "external_userid": run.external_userid,
                        "step_id": step.id,
                        "url": payload["link"]["url"],
                        "created_at": now,
                        "clicks": 0,
                    }
                )
                payload["link"]["url"] = links.click_url(self._settings.service.public_url, token)
            attachments.append(payload)
        return text, attachments


def failed_outcome(run: RunView, now: float, exc: Exception) -> RunOutcome:
    """The run stops in state `failed`, with the error's type on its log line."""
    entry = LogEntry(run.step_id, "failed", "error", f"{type(exc).__name__}: {exc}"[:255])
    return RunOutcome("failed", run.step_id, now, run.step_reached_at, (entry,), reason=type(exc).__name__)


GUIDE_ROUTES = ("mass_task", "guide_notify")
"""Routes that give the guide a task (her daily budget counts them)."""


def counted(customer: CustomerView, route: str) -> CustomerView:
    """The customer after one more send by `route` (her caps hold across runs in one batch)."""
    mass = 1 if route == "mass_task" else 0
    return _plus(customer, sent=1, mass=mass, kf=1 if route == "kf" else 0)


def with_guide_tasks(customer: CustomerView, extra: int) -> CustomerView:
    """The customer with her guide's tasks from this batch added to those stored."""
    return _plus(customer, guide=extra) if extra else customer


def _plus(
    customer: CustomerView, *, sent: int = 0, mass: int = 0, guide: int = 0, kf: int = 0
) -> CustomerView:
    h = customer.history
    # Built field by field: this runs for nearly every step, and _replace would go through a dict.
    history = policy.SendHistory(
        h.sent_today + sent,
        h.sent_this_week + sent,
        h.mass_today + mass,
        h.mass_this_week + mass,
        h.mass_this_month + mass,
        h.guide_tasks_today + guide,
        h.unsubscribed,
        h.kf_last_customer_message_at,
        h.kf_sent_since + kf,
    )
    return CustomerView(customer.external_userid, customer.facts, customer.guide, customer.open_kfid, history)


def send_counts(sends: Sequence[tuple[str, float]], windows: policy.CountWindows) -> dict[str, int]:
    """Sends (route, at) counted per local day, week and month: the SendHistory counts of a customer."""
    day, week, month = windows.starts
    sent_today = sent_this_week = mass_today = mass_this_week = mass_this_month = 0
    for route, at in sends:  # one pass: this runs for every customer of every batch
        if at >= week:
            sent_this_week += 1
        if at >= day:
            sent_today += 1
        if route == "mass_task":
            if at >= month:
                mass_this_month += 1
            if at >= week:
                mass_this_week += 1
            if at >= day:
                mass_today += 1
    return {
        "sent_today": sent_today,
        "sent_this_week": sent_this_week,
        "mass_today": mass_today,
        "mass_this_week": mass_this_week,
        "mass_this_month": mass_this_month,
    }


def policy_zone(settings: Settings) -> dt.tzinfo:
    """The manners' timezone (days, weeks and quiet hours are local)."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.sop.policy.timezone)


async def load_customers(
    session: AsyncSession, customers: Sequence[str], now: float, settings: Settings
) -> dict[str, CustomerView]:
    """Facts, guide, kf session and send history of `customers`, in a few queries."""
    ids = sorted(set(customers))
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    tz = policy_zone(settings)
    local_now = dt.datetime.fromtimestamp(now, tz)
    windows = policy.windows(local_now, settings.sop.policy)
    c = Customer.__table__.c
    # Plain rows: facts() reads attributes, and 500 mapped instances per batch cost more than the query.
    rows = {
        r.external_userid: r
        for r in await session.execute(
            select(
                c.external_userid,
                c.name,
                c.stage,
                c.first_state,
                c.lead_score,
                c.first_seen_at,
                c.stage_since,
                c.last_message_at,
                c.unsubscribed_at,
            ).where(one_of(c.external_userid, ids, dialect))
        )
    }
    tags: dict[str, list[str]] = {}
    for customer, tag in await session.execute(
        select(CustomerTag.external_userid, CustomerTag.tag_name).where(
            one_of(CustomerTag.external_userid, ids, dialect), CustomerTag.removed_at.is_(None)
        )
    ):
        tags.setdefault(customer, []).append(tag)
    attributes: dict[str, dict[str, Any]] = {}
    for customer, key, value in await session.execute(
        select(CustomerAttribute.external_userid, CustomerAttribute.key, CustomerAttribute.value).where(
            one_of(CustomerAttribute.external_userid, ids, dialect)
        )
    ):
        values = attributes.setdefault(customer, {})
        values[key] = value
        values.update(derive(key, value, local_now.date()))
    guides: dict[str, tuple[str, float]] = {}
    for customer, userid, added_at in await session.execute(
        select(Follow.external_userid, Follow.userid, Follow.added_at).where(
            one_of(Follow.external_userid, ids, dialect), Follow.ended_at.is_(None), Follow.status == "active"
        )
    ):
        # The guide she added most recently is the one who knows her now.
        if customer not in guides or added_at > guides[customer][1]:
            guides[customer] = (userid, added_at)
    kf: dict[str, Any] = {}
    k = KfSession.__table__.c
    for row in await session.execute(
        select(k.external_userid, k.open_kfid, k.last_customer_at, k.sent_since_customer).where(
            one_of(k.external_userid, ids, dialect)
        )
    ):
        if row.external_userid not in kf or row.last_customer_at > kf[row.external_userid].last_customer_at:
            kf[row.external_userid] = row
    sent: dict[str, list[tuple[str, float]]] = {}
    month_start = windows.month[0].timestamp()
    week_start = windows.week[0].timestamp()
    for customer, route, at in await session.execute(
        select(SopLog.external_userid, SopLog.route, SopLog.at).where(
            one_of(SopLog.external_userid, ids, dialect),
            SopLog.outcome == "sent",
            SopLog.at >= min(month_start, week_start),
        )
    ):
        sent.setdefault(customer, []).append((route, at))
    guide_ids = sorted({g for g, _ in guides.values()})
    day_start = windows.day[0].timestamp()
    tasks: dict[str, int] = dict(
        (
            await session.execute(
                select(SopLog.userid, func.count())
                .where(
                    one_of(SopLog.userid, guide_ids, dialect),
                    SopLog.outcome == "sent",
                    SopLog.route.in_(GUIDE_ROUTES),
                    SopLog.at >= day_start,
                )
                .group_by(SopLog.userid)
            )
        ).all()
    )
    channels = await _channels(session, {r.first_state for r in rows.values() if r.first_state})
    out: dict[str, CustomerView] = {}
    for customer in ids:
        row = rows.get(customer)
        guide = guides.get(customer, ("", 0.0))[0]
        session_row = kf.get(customer)
        sends = sent.get(customer, [])
        history = policy.SendHistory(
            **send_counts(sends, windows),
            guide_tasks_today=tasks.get(guide, 0),
            unsubscribed=bool(row is not None and row.unsubscribed_at is not None),
            kf_last_customer_message_at=(
                dt.datetime.fromtimestamp(session_row.last_customer_at, tz)
                if session_row is not None and session_row.last_customer_at
                else None
            ),
            kf_sent_since=session_row.sent_since_customer if session_row is not None else 0,
        )
        out[customer] = CustomerView(
            customer,
            facts(row, tags.get(customer, []), attributes.get(customer, {}), guide, channels, now),
            guide=guide,
            open_kfid=session_row.open_kfid if session_row is not None else "",
            history=history,
        )
    return out


def one_of(column: Any, values: Sequence[str], dialect: str) -> Any:
    """`column IN values`; on PostgreSQL `= ANY(array)`, one parameter instead of hundreds."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String())))
    return column.in_(values)


async def _channels(session: AsyncSession, states: set[str]) -> dict[str, str]:
    if not states:
        return {}
    rows = await session.execute(
        select(ChannelCode.state, ChannelCode.key).where(ChannelCode.state.in_(sorted(states)))
    )
    return dict(rows.all())


def facts(
    row: Any,
    tags: list[str],
    attributes: dict[str, Any],
    guide: str,
    channels: dict[str, str],
    now: float,
) -> dict[str, Any]:
    """The names playbook conditions read (bot/playbooks.py FACT_NAMES)."""

    def days(since: float | None) -> float | None:
        return None if since is None else round((now - since) / 86400, 2)

    return {
        "tags": sorted(tags),
        "stage": row.stage if row is not None else "",
        "channel": channels.get(row.first_state, row.first_state) if row is not None else "",
        "guide": guide,
        "lead_score": row.lead_score if row is not None else 0,
        "days_since_added": days(row.first_seen_at) if row is not None else None,
        "days_in_stage": days(row.stage_since) if row is not None else None,
        "days_since_message": days(row.last_message_at) if row is not None else None,
        "unsubscribed": bool(row is not None and row.unsubscribed_at is not None),
        "attributes": attributes,
        "customer_name": row.name if row is not None else "",
    }
