"""The SOP runner's scheduler contract on SQLite and PostgreSQL: exactly once, late, quiet, caps.

Customers, follows and enrollments are bulk-inserted as the runner finds them; playbooks are
built from YAML text; the clock is a FrozenClock that only moves when a test moves it. Each
test checks what the runner committed: outbox rows (by idempotency key), sop_log lines and the
runs' new state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import sop_runner
from bot.clock import SHANGHAI, FrozenClock
from bot.config import Settings
from bot.effects import Effects
from bot.playbooks import PlaybookSet, load_playbooks_from_texts
from bot.sop_runner import SopRunner, Texts
from bot.store import db
from bot.store.db import Sessions
from bot.store.models import Customer, Enrollment, Follow, OutboxRow, SopLog

# Enrolled on Sunday 22 Nov 2026 at 09:00 Shanghai: day 1 is Monday the 23rd.
ENROLLED = dt.datetime(2026, 11, 22, 9, 0, tzinfo=SHANGHAI)
DAY1_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
DAY2_22 = dt.datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI)
DAY3_0830 = dt.datetime(2026, 11, 25, 8, 30, tzinfo=SHANGHAI)

NURTURE = """\
id: nurture
name: 培育
trigger: {stage_entered: 加微}
max_delay: 6h
steps:
  - id: d1
    day: 1
    at: "10:00"
    content: {text: "{customer_name}早上好～"}
    route: [mass_task]
  - id: d2
    day: 2
    at: "22:00"
    content: {text: "晚上好～"}
    route: [mass_task]
  - id: d3
    day: 3
    at: "10:00"
    content: {text: "第三天～"}
    route: [mass_task]
"""

RECALL = """\
id: recall
name: 召回
trigger: {stage_entered: 沉默}
steps:
  - id: d1
    day: 1
    at: "10:00"
    content: {text: "好久不见～"}
    route: [mass_task]
"""


def playbooks(*texts: str) -> PlaybookSet:
    """A playbook set from YAML texts (no content library, no stage list)."""
    return load_playbooks_from_texts({f"pb{n}.yaml": text for n, text in enumerate(texts)})


def make_runner(sessions: Sessions, clock: FrozenClock, settings: Settings, pbs: PlaybookSet) -> SopRunner:
    """A runner as bot/runtime.py builds one, with its own Effects."""
    return SopRunner(
        sessions,
        Effects(clock),
        clock,
        settings,
        playbooks=lambda: pbs,
        texts=lambda: Texts("小禾母婴", {}),
    )


def customer_id(n: int) -> str:
    """The external_userid of seeded customer `n`."""
    return f"wm{n:06d}"


async def seed(
    sessions: Sessions,
    customers: Sequence[str],
    runs: Sequence[tuple[str, str, str, float]],
    guides: int = 10,
) -> None:
    """Customers, one active follow each (guides rotate) and `runs` (customer, playbook, step, due_at)."""
    at = ENROLLED.timestamp()
    async with sessions.begin() as session:
        await session.execute(
            insert(Customer),
            [
                {
                    "external_userid": c,
                    "name": f"客户{n}",
                    "first_seen_at": at,
                    "updated_at": at,
                    "stage": "加微",
                    "stage_since": at,
                }
                for n, c in enumerate(customers)
            ],
        )
        await session.execute(
            insert(Follow),
            [
                {"external_userid": c, "userid": f"guide{n % guides}", "added_at": at, "updated_at": at}
                for n, c in enumerate(customers)
            ],
        )
        await session.execute(
            insert(Enrollment),
            [
                {
                    "external_userid": c,
                    "playbook_id": pb,
                    "iteration": 1,
                    "enrolled_stage": "加微",
                    "enrolled_at": at,
                    "step_id": step,
                    "state": "due",
                    "due_at": due,
                    "step_reached_at": at,
                    "updated_at": at,
                }
                for c, pb, step, due in runs
            ],
        )


async def outbox_keys(sessions: Sessions) -> list[str]:
    """Every outbox idempotency key (duplicates would show twice; the column is also unique)."""
    async with sessions() as session:
        return list(await session.scalars(select(OutboxRow.idem_key).order_by(OutboxRow.idem_key)))


async def log_rows(sessions: Sessions, *where: Any) -> list[tuple[str, str, str, str]]:
    """(customer, step, outcome, reason) of sop_log lines, in order."""
    async with sessions() as session:
        rows = await session.execute(
            select(SopLog.external_userid, SopLog.step_id, SopLog.outcome, SopLog.reason)
            .where(*where)
            .order_by(SopLog.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def runs_of(sessions: Sessions) -> dict[tuple[str, str], Enrollment]:
    """Enrollments by (customer, playbook)."""
    async with sessions() as session:
        return {(r.external_userid, r.playbook_id): r for r in await session.scalars(select(Enrollment))}


async def drain(runner: SopRunner) -> int:
    """run_due until nothing is claimable; how many runs this worker handled."""
    handled = 0
    while True:
        n = await runner.run_due()
        if n == 0:
            return handled
        handled += n


@pytest.fixture
def pbs() -> PlaybookSet:
    """The nurture playbook alone."""
    return playbooks(NURTURE)


@pytest.fixture
def runner_factory(
    sessions: Sessions, clock: FrozenClock, settings_factory: Callable[..., Settings], pbs: PlaybookSet
) -> Callable[..., SopRunner]:
    """Runners on the test's sessions; keyword arguments are dotted settings overrides."""

    def make(pbset: PlaybookSet | None = None, **overrides: Any) -> SopRunner:
        return make_runner(sessions, clock, settings_factory(**overrides), pbset or pbs)

    return make


# ------------------------------------------------------------------------------------ exactly once


async def test_two_workers_on_one_due_set_send_every_step_exactly_once(
    engine: AsyncEngine, sessions: Sessions, clock: FrozenClock, settings_factory, pbs: PlaybookSet
) -> None:
    n = 240
    customers = [customer_id(i) for i in range(n)]
    await seed(sessions, customers, [(c, "nurture", "d1", DAY1_10.timestamp()) for c in customers], guides=8)
    clock.set(DAY1_10)
    settings = settings_factory(**{"sop.batch_size": 16})
    if engine.dialect.name == "postgresql":
        # Two replicas: separate engines (connection pools) on the same database, running at once.
        other = db.create_engine(engine.url.render_as_string(hide_password=False))
        worker_sessions = [sessions, db.sessionmaker(other)]
    else:
        # Embedded SQLite serves one process: two runner loops there share its write turn.
        other = None
        worker_sessions = [sessions, sessions]
    try:
        workers = [make_runner(s, clock, settings, pbs) for s in worker_sessions]
        handled = await asyncio.gather(*(drain(w) for w in workers))
    finally:
        if other is not None:
            await other.dispose()

    assert sum(handled) == n, handled  # no run claimed twice, none left behind
    if other is not None:
        assert all(handled), handled  # both replicas really took part
    expected = sorted(f"mass:{c}:nurture:d1:1" for c in customers)
    assert await outbox_keys(sessions) == expected
    sent = await log_rows(sessions, SopLog.outcome == "sent")
    assert sorted(c for c, *_ in sent) == customers
    runs = await runs_of(sessions)
    assert {(r.step_id, r.state, r.due_at) for r in runs.values()} == {("d2", "due", DAY2_22.timestamp())}
    assert await workers[0].run_due() == 0


async def test_a_crash_between_claim_and_send_leaves_the_runs_due_and_sends_once_after(
    sessions: Sessions, clock: FrozenClock, runner_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = [customer_id(i) for i in range(30)]
    await seed(sessions, customers, [(c, "nurture", "d1", DAY1_10.timestamp()) for c in customers])
    clock.set(DAY1_10)
    runner = runner_factory(**{"sop.batch_size": 500})
    real_apply = Effects.apply_batch
    crashes: list[int] = []

    async def crash_once(self: Effects, session: Any, batch: Any) -> None:
        if not crashes:
            crashes.append(sum(len(actions) for actions, _ in batch))
            raise ConnectionError("process died after claiming, before the commit")
        await real_apply(self, session, batch)

    monkeypatch.setattr(Effects, "apply_batch", crash_once)
    with pytest.raises(ConnectionError):
        await runner.run_due()
    assert crashes and crashes[0] > 0  # it had claimed and decided: the sends were in the batch

    assert await outbox_keys(sessions) == []
    assert await log_rows(sessions) == []
    runs = await runs_of(sessions)
    assert {(r.step_id, r.state, r.due_at) for r in runs.values()} == {("d1", "due", DAY1_10.timestamp())}

    # Restarted (a fresh runner, later): every step goes once.
    clock.advance(minutes=5)
    assert await drain(runner_factory()) == len(customers)
    assert await outbox_keys(sessions) == sorted(f"mass:{c}:nurture:d1:1" for c in customers)
    assert len(await log_rows(sessions, SopLog.outcome == "sent")) == len(customers)
    assert await runner.run_due() == 0


async def test_a_replayed_step_hits_its_outbox_key(
    sessions: Sessions, clock: FrozenClock, runner_factory
) -> None:
    """If a run's step is ever run again (state restored from a backup), the send is not repeated."""
    customers = [customer_id(i) for i in range(3)]
    await seed(sessions, customers, [(c, "nurture", "d1", DAY1_10.timestamp()) for c in customers])
    clock.set(DAY1_10)
    runner = runner_factory()
    assert await runner.run_due() == 3
    async with sessions.begin() as session:
        await session.execute(
            Enrollment.__table__.update().values(step_id="d1", state="due", due_at=DAY1_10.timestamp())
        )
    clock.advance(minutes=1)
    assert await runner.run_due() == 3
    assert await outbox_keys(sessions) == sorted(f"mass:{c}:nurture:d1:1" for c in customers)


# ------------------------------------------------------------------------------------ late steps


async def test_a_step_late_past_max_delay_is_skipped_and_the_run_moves_on(
    sessions: Sessions, clock: FrozenClock, runner_factory
) -> None:
    now = DAY1_10 + dt.timedelta(hours=7)  # 17:00: the runner was down all day
    late, in_time = customer_id(1), customer_id(2)
    await seed(
        sessions,
        [late, in_time],
        [
            (late, "nurture", "d1", DAY1_10.timestamp()),  # 7 h late, max_delay 6 h
            (in_time, "nurture", "d1", (now - dt.timedelta(hours=5, minutes=59)).timestamp()),
        ],
    )
    clock.set(now)
    assert await runner_factory().run_due() == 2

    assert await outbox_keys(sessions) == [f"mass:{in_time}:nurture:d1:1"]
    assert await log_rows(sessions, SopLog.external_userid == late) == [(late, "d1", "skipped", "late")]
    assert await log_rows(sessions, SopLog.external_userid == in_time) == [(in_time, "d1", "sent", "")]
    runs = await runs_of(sessions)
    for customer in (late, in_time):
        run = runs[(customer, "nurture")]
        assert (run.step_id, run.state, run.due_at) == ("d2", "due", DAY2_22.timestamp())


async def test_a_flood_of_late_steps_after_downtime_sends_nothing(
    sessions: Sessions, clock: FrozenClock, runner_factory
) -> None:
    customers = [customer_id(i) for i in range(50)]
    await seed(sessions, customers, [(c, "nurture", "d1", DAY1_10.timestamp()) for c in customers])
    clock.set(DAY1_10 + dt.timedelta(days=1))  # a day of downtime: d1 is 24 h late for everyone
    assert await drain(runner_factory(**{"sop.batch_size": 7})) == len(customers)
    assert await outbox_keys(sessions) == []
    assert {o for _, _, o, _ in await log_rows(sessions)} == {"skipped"}


async def test_a_run_that_breaks_stops_alone_and_the_batch_goes_on(
    sessions: Sessions, clock: FrozenClock, runner_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken, fine = customer_id(1), customer_id(2)
    due = DAY1_10.timestamp()
    await seed(sessions, [broken, fine], [(broken, "nurture", "d1", due), (fine, "nurture", "d1", due)])
    clock.set(DAY1_10)
    real = sop_runner.decide_run

    def decide(run: Any, *args: Any) -> Any:
        if run.external_userid == broken:
            raise KeyError("a step an edit removed")
        return real(run, *args)

    monkeypatch.setattr(sop_runner, "decide_run", decide)
    runner = runner_factory()
    assert await runner.run_due() == 2
    assert await runner.run_due() == 0  # the broken run is not claimed again and again
    assert await outbox_keys(sessions) == [f"mass:{fine}:nurture:d1:1"]
    assert await log_rows(sessions, SopLog.external_userid == broken) == [(broken, "d1", "failed", "error")]
    assert (await runs_of(sessions))[(broken, "nurture")].state == "failed"


# ------------------------------------------------------------------------------------ quiet hours


async def test_a_step_due_in_quiet_hours_moves_to_their_end_then_goes(
    sessions: Sessions, clock: FrozenClock, runner_factory
) -> None:
    customer = customer_id(7)
    await seed(sessions, [customer], [(customer, "nurture", "d2", DAY2_22.timestamp())])
    clock.set(DAY2_22)
    runner = runner_factory()
    assert await runner.run_due() == 1
    assert await outbox_keys(sessions) == []
    assert await log_rows(sessions) == [(customer, "d2", "deferred", "quiet_hours")]
    [run] = (await runs_of(sessions)).values()
    assert (run.step_id, run.state, run.due_at) == ("d2", "due", DAY3_0830.timestamp())

    clock.set(DAY3_0830 - dt.timedelta(seconds=1))
    assert await runner.run_due() == 0  # still quiet: not claimed at all
    clock.set(DAY3_0830)
    assert await runner.run_due() == 1
    assert await outbox_keys(sessions) == [f"mass:{customer}:nurture:d2:1"]
    assert (await log_rows(sessions))[-1] == (customer, "d2", "sent", "")
    [run] = (await runs_of(sessions)).values()
    assert run.step_id == "d3"


# ------------------------------------------------------------------------------------ caps


@pytest.mark.parametrize("batch_size", [1, 500], ids=["separate-batches", "one-batch"])
async def test_the_daily_cap_holds_across_playbooks(
    sessions: Sessions, clock: FrozenClock, runner_factory, batch_size: int
) -> None:
    customer = customer_id(3)
    due = DAY1_10.timestamp()
    await seed(sessions, [customer], [(customer, "nurture", "d1", due), (customer, "recall", "d1", due)])
    clock.set(DAY1_10)
    runner = runner_factory(
        playbooks(NURTURE, RECALL), **{"sop.batch_size": batch_size, "sop.policy.customer_daily_cap": 1}
    )
    assert await drain(runner) == 2

    keys = await outbox_keys(sessions)
    assert len(keys) == 1 and keys[0] in (f"mass:{customer}:nurture:d1:1", f"mass:{customer}:recall:d1:1")
    outcomes = sorted((o, r) for _, _, o, r in await log_rows(sessions) if o != "done")
    assert outcomes == [("deferred", "daily_cap"), ("sent", "")]
    runs = await runs_of(sessions)
    held = next(r for r in runs.values() if r.step_id == "d1" and r.state == "due")
    tomorrow = dt.datetime(2026, 11, 24, 8, 30, tzinfo=SHANGHAI)  # next day, after quiet hours
    assert held.due_at == tomorrow.timestamp()

    clock.set(tomorrow)
    assert await drain(runner) == 1
    assert len(await outbox_keys(sessions)) == 2  # the held one goes the next morning


@pytest.mark.parametrize("batch_size", [1, 500], ids=["separate-batches", "one-batch"])
async def test_the_guide_daily_task_budget_holds_within_a_batch(
    sessions: Sessions, clock: FrozenClock, runner_factory, batch_size: int
) -> None:
    customers = [customer_id(i) for i in range(5)]
    await seed(sessions, customers, [(c, "nurture", "d1", DAY1_10.timestamp()) for c in customers], guides=1)
    clock.set(DAY1_10)
    runner = runner_factory(**{"sop.batch_size": batch_size, "sop.policy.guide_daily_tasks": 2})
    assert await drain(runner) == 5
    outcomes = Counter((o, r) for _, _, o, r in await log_rows(sessions))
    assert outcomes == {("sent", ""): 2, ("deferred", "guide_budget"): 3}
    assert len(await outbox_keys(sessions)) == 2


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # two replicas need a server database
async def test_the_daily_cap_holds_across_playbooks_claimed_by_two_workers_at_once(
    engine: AsyncEngine,
    sessions: Sessions,
    clock: FrozenClock,
    settings_factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = customer_id(4)
    due = DAY1_10.timestamp()
    await seed(sessions, [customer], [(customer, "nurture", "d1", due), (customer, "recall", "d1", due)])
    clock.set(DAY1_10)
    settings = settings_factory(**{"sop.batch_size": 1, "sop.policy.customer_daily_cap": 1})
    pbs = playbooks(NURTURE, RECALL)
    both_claimed = asyncio.Barrier(2)
    real_claim = sop_runner.SopRunner._claim

    async def claim_then_meet(self: Any, *args: Any, **kwargs: Any) -> Any:
        runs = await real_claim(self, *args, **kwargs)
        # Each worker has claimed one of her two runs (and holds its locks) before either decides.
        await asyncio.wait_for(both_claimed.wait(), timeout=10)
        return runs

    monkeypatch.setattr(sop_runner.SopRunner, "_claim", claim_then_meet)
    other = db.create_engine(engine.url.render_as_string(hide_password=False))
    try:
        workers = [make_runner(s, clock, settings, pbs) for s in (sessions, db.sessionmaker(other))]
        # One worker holds the customer; the other leaves her second run for a later round.
        assert sorted(await asyncio.gather(*(w.run_due() for w in workers))) == [0, 1]
    finally:
        await other.dispose()
    monkeypatch.setattr(sop_runner.SopRunner, "_claim", real_claim)
    assert await make_runner(sessions, clock, settings, pbs).run_due() == 1
    assert len(await outbox_keys(sessions)) == 1
    outcomes = Counter((o, r) for _, _, o, r in await log_rows(sessions))
    assert outcomes == {("sent", ""): 1, ("deferred", "daily_cap"): 1}


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # loops overlap only on a server database
async def test_the_guide_daily_task_budget_holds_across_loops_of_one_process(
    sessions: Sessions, clock: FrozenClock, runner_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = [customer_id(i) for i in range(6)]
    await seed(sessions, customers, [(c, "nurture", "d1", DAY1_10.timestamp()) for c in customers], guides=1)
    clock.set(DAY1_10)
    runner = runner_factory(**{"sop.batch_size": 2, "sop.policy.guide_daily_tasks": 2})
    both_claimed = asyncio.Barrier(2)
    real_claim = sop_runner.SopRunner._claim

    async def claim_then_meet(self: Any, *args: Any, **kwargs: Any) -> Any:
        runs = await real_claim(self, *args, **kwargs)
        # Both loops hold a batch, and neither has committed, when they read the stored counts.
        await asyncio.wait_for(both_claimed.wait(), timeout=10)
        return runs

    monkeypatch.setattr(sop_runner.SopRunner, "_claim", claim_then_meet)
    assert await asyncio.gather(runner.run_due(), runner.run_due()) == [2, 2]
    monkeypatch.setattr(sop_runner.SopRunner, "_claim", real_claim)
    assert await drain(runner) == 2
    outcomes = Counter((o, r) for _, _, o, r in await log_rows(sessions))
    # Without the process's in-flight tally each loop would have given the guide two tasks.
    assert outcomes == {("sent", ""): 2, ("deferred", "guide_budget"): 4}
    assert len(await outbox_keys(sessions)) == 2
