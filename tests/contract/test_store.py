"""Inbox, outbox, timers and migrations behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot import actions as act
from bot import errors
from bot.config import InboxSettings, OutboxSettings, SchedulerSettings
from bot.effects import Effects
from bot.events import ContactAdded, RouteKey
from bot.inbox import Inbox, Stored
from bot.scheduler import Scheduler
from bot.store import db
from bot.store.models import InboxRow, OutboxRow, TimelineEntry, TimerRow

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
async def make_inbox():
    """Inbox factory; every inbox's writer connection is released after the test."""
    made: list[Inbox] = []

    def make(sessions, clock) -> Inbox:
        made.append(Inbox(sessions, clock))
        return made[-1]

    yield make
    for inbox in made:
        await inbox.close()


def stored(customer: str, n: int) -> Stored:
    event = ContactAdded(
        app="contact",
        create_time=n,
        route_key=RouteKey("event", "change_external_contact", "add_external_contact"),
        dedup_key=f"cec:{customer}:{n}",
        partition=f"cust:{customer}",
        userid="xiaolin",
        external_userid=customer,
    )
    return Stored("contact", f"<xml>{customer}:{n}</xml>", event)


async def test_inbox_put_is_insert_if_absent(sessions, clock, make_inbox) -> None:
    inbox = make_inbox(sessions, clock)
    assert await inbox.put(stored("wm1", 1)) is True
    assert await inbox.put(stored("wm1", 1)) is False
    assert inbox.wakeup.is_set()
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxRow)) == 1


async def test_concurrent_puts_share_one_commit_and_a_retry_is_new_only_once(
    sessions, clock, make_inbox
) -> None:
    inbox = make_inbox(sessions, clock)
    results = await asyncio.gather(
        *(
            inbox.put(item)
            for item in (stored("wm1", 1), stored("wm1", 1), stored("wm2", 1), stored("wm1", 1))
        )
    )
    assert results == [True, False, True, False]
    assert await inbox.put(stored("wm2", 1)) is False
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxRow)) == 2


async def test_a_caller_that_hangs_up_still_gets_its_row_written(sessions, clock, make_inbox) -> None:
    inbox = make_inbox(sessions, clock)
    other = asyncio.create_task(inbox.put(stored("wm2", 1)))
    hung_up = asyncio.create_task(inbox.put(stored("wm1", 1)))
    await asyncio.wait([hung_up], timeout=0)  # let it queue its row and wait for the commit
    hung_up.cancel()
    assert await other is True
    await inbox.close()
    async with sessions() as session:
        keys = set(await session.scalars(select(InboxRow.dedup_key)))
    assert keys == {"cec:wm1:1", "cec:wm2:1"}


async def test_inbox_claims_one_row_per_customer_in_order(sessions, clock, make_inbox) -> None:
    inbox = make_inbox(sessions, clock)
    for item in (stored("wmA", 1), stored("wmA", 2), stored("wmB", 1)):
        await inbox.put(item)
    first = await inbox.claim(10, lease=60)
    assert sorted(r.dedup_key for r in first) == ["cec:wmA:1", "cec:wmB:1"]
    assert await inbox.claim(10, lease=60) == []  # wmA:2 waits for wmA:1
    async with sessions.begin() as session:
        row = await session.get(InboxRow, next(r.id for r in first if r.dedup_key == "cec:wmA:1"))
        row.status = "done"
    assert [r.dedup_key for r in await inbox.claim(10, lease=60)] == ["cec:wmA:2"]


async def test_inbox_lease_expiry_makes_a_row_claimable_again(sessions, clock, make_inbox) -> None:
    inbox = make_inbox(sessions, clock)
    await inbox.put(stored("wmA", 1))
    assert len(await inbox.claim(10, lease=60)) == 1
    assert await inbox.claim(10, lease=60) == []
    clock.advance(seconds=61)
    assert len(await inbox.claim(10, lease=60)) == 1


async def test_concurrent_claims_never_share_a_row(sessions, clock, make_inbox) -> None:
    a, b = make_inbox(sessions, clock), make_inbox(sessions, clock)
    for n in range(40):
        await a.put(stored(f"wm{n}", n))
    ids: list[int] = []
    while results := await asyncio.gather(*(x.claim(15, lease=60) for x in (a, b, a, b))):
        claimed = [r.id for rows in results for r in rows]
        if not claimed:
            break
        ids += claimed
    # Concurrent claimers may skip rows another one took, but never take the same row twice.
    assert len(ids) == len(set(ids)) == 40


async def test_effects_are_idempotent(sessions, clock) -> None:
    effects = Effects(clock)
    batch = [
        act.UpsertCustomer("wm1", first_state="store_12", seen_at=1.0),
        act.UpsertFollow("wm1", "xiaolin", state="store_12", added_at=1.0),
        act.RecordTimeline("wm1", "contact_added", "添加导购", 1.0, "src-1"),
        act.RefreshCustomer("wm1", reason_key="src-1"),
        act.Schedule("sop:wm1:day1", "sop_step", due_at=100.0, payload={"step": "day1"}),
    ]
    for _ in range(2):
        async with sessions.begin() as session:
            await effects.apply(session, batch, source="src-1")
    async with sessions() as session:
        for model in (TimelineEntry, OutboxRow, TimerRow):
            assert await session.scalar(select(func.count()).select_from(model)) == 1, model


async def test_scheduler_fires_due_timers_once_across_replicas(sessions, clock) -> None:
    fired: list[str] = []

    def handler(timer, deps):
        fired.append(timer.key)
        return [act.RecordTimeline("wm1", "sop", timer.key, timer.due_at, f"t:{timer.key}")]

    replicas = []
    for _ in range(3):
        scheduler = Scheduler(sessions, Effects(clock), clock, SchedulerSettings(batch_size=5), deps=None)
        scheduler.register("sop_step", handler)
        replicas.append(scheduler)
    now = clock.timestamp()
    async with sessions.begin() as session:
        await Effects(clock).apply(
            session,
            [act.Schedule(f"k{n}", "sop_step", due_at=now + (n % 2) * 3600) for n in range(30)],
            source="test",
        )
    counts = await asyncio.gather(*(s.run_due(now) for s in replicas))
    assert sum(counts) == 15 and sorted(fired) == sorted(set(fired))
    assert await replicas[0].run_due(now) == 0
    clock.advance(hours=1)
    await asyncio.gather(*(s.run_due() for s in replicas))
    assert len(fired) == len(set(fired)) == 30
    assert await replicas[0].next_due() is None


async def test_scheduler_retries_a_failing_handler_then_dead_letters(sessions, clock) -> None:
    scheduler = Scheduler(sessions, Effects(clock), clock, SchedulerSettings(), deps=None)
    scheduler.register("boom", lambda timer, deps: 1 / 0)
    async with sessions.begin() as session:
        await Effects(clock).apply(
            session, [act.Schedule("b1", "boom", due_at=clock.timestamp())], source="t"
        )
    for _ in range(6):
        await scheduler.run_due()
        clock.advance(hours=1)
    async with sessions() as session:
        row = await session.scalar(select(TimerRow))
    assert (row.status, row.attempts) == ("failed", 5)
    with pytest.raises(errors.ConfigError):
        scheduler.register("boom", lambda timer, deps: [])


async def test_cancelled_timer_does_not_fire(sessions, clock) -> None:
    scheduler = Scheduler(sessions, Effects(clock), clock, SchedulerSettings(), deps=None)
    fired = []
    scheduler.register("k", lambda timer, deps: fired.append(timer.key) or [])
    async with sessions.begin() as session:
        await Effects(clock).apply(session, [act.Schedule("t1", "k", due_at=clock.timestamp())], source="t")
        await Effects(clock).apply(session, [act.CancelTimer("t1")], source="t")
    assert await scheduler.run_due() == 0 and fired == []


async def test_schema_revision_and_behind_schema_refusal(engine) -> None:
    assert await db.current_revision(engine) == db.head_revision()
    await db.prepare(engine, auto_upgrade=False)  # current: nothing to do
    from alembic import command

    from bot.store.db import _alembic_config

    def downgrade(connection) -> None:
        command.downgrade(_alembic_config(connection), "base")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade)
    with pytest.raises(errors.SchemaBehind, match="siyu db upgrade"):
        await db.prepare(engine, auto_upgrade=False)
    await db.prepare(engine, auto_upgrade=True)
    assert await db.current_revision(engine) == db.head_revision()


async def test_the_migrated_schema_is_the_models_schema(engine) -> None:
    # Tables, columns and indexes the code declares are the ones the migrations built: a model
    # edit without its migration (or the reverse) shows here on both backends.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.store.models import Base

    async with engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    assert diff == []


def test_settings_sections_exist() -> None:
    assert InboxSettings().max_attempts >= 1 and OutboxSettings().retry.max_attempts >= 1


async def test_housekeeping_purges_finished_rows_and_keeps_dead_letters(
    sessions, clock, make_inbox, settings
) -> None:
    from bot.store import housekeeping

    inbox = make_inbox(sessions, clock)
    for n in range(3):
        await inbox.put(stored("wm1", n))
    async with sessions.begin() as session:
        rows = list(await session.scalars(select(InboxRow).order_by(InboxRow.id)))
        rows[0].status, rows[0].processed_at = "done", clock.timestamp()
        rows[1].status, rows[1].processed_at = "failed", clock.timestamp()
    assert await housekeeping.purge(sessions, clock.timestamp(), settings) == 0  # too recent
    clock.advance(days=settings.inbox.retention_days + 1)
    assert await housekeeping.purge(sessions, clock.timestamp(), settings) == 1
    async with sessions() as session:
        left = list(await session.scalars(select(InboxRow.status).order_by(InboxRow.id)))
    assert left == ["failed", "pending"]


async def test_listener_wakes_on_work_committed_by_another_replica(
    engine, sessions, clock, make_inbox
) -> None:
    from bot.store.notify import Listener

    woken = {"inbox": asyncio.Event(), "outbox": asyncio.Event()}
    listener = Listener(engine, woken)
    listening = await listener.start()
    try:
        if engine.dialect.name != "postgresql":
            assert listening is False  # SQLite: one process, local wake-ups and polling
            return
        assert listening is True
        await make_inbox(sessions, clock).put(stored("wm1", 1))  # another replica's inbox
        await asyncio.wait_for(woken["inbox"].wait(), timeout=5)
        async with sessions.begin() as session:
            await Effects(clock).apply(session, [act.RefreshCustomer("wm1", reason_key="k")], source="t")
        await asyncio.wait_for(woken["outbox"].wait(), timeout=5)
    finally:
        await listener.stop()
