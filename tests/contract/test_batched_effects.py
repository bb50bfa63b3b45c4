"""A batch of events applied together leaves the same rows as applying them one by one."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import actions as act
from bot.config import InboxSettings
from bot.effects import Effects
from bot.events import ContactAdded, RouteKey
from bot.inbox import Inbox, InboxWorker, Stored
from bot.router import Dispatcher, Router
from bot.store.models import (
    Customer,
    CustomerAttribute,
    CustomerTag,
    Follow,
    InboxRow,
    OutboxRow,
    TimelineEntry,
    TimerRow,
)

pytestmark = pytest.mark.usefixtures("engine")


def _events(customer: str, at: float) -> list[act.Action]:
    return [
        act.UpsertCustomer(customer, first_state="store_12", seen_at=at),
        act.UpsertFollow(customer, "xiaolin", state="store_12", added_at=at, add_way=1),
        act.RecordTimeline(customer, "contact_added", "添加导购", at, f"src:{customer}:{at}"),
        act.TagCustomer(customer, "门店客户", "来源", "channel", f"tag:{customer}:{at}", at),
        act.SetAttribute(customer, "city", f"城市{int(at)}", "city", f"attr:{customer}:{at}", "", at),
        act.Schedule(f"sync:{customer}", "tags_sync", due_at=at + 5),
        act.RefreshCustomer(customer, reason_key=f"src:{customer}:{at}"),
    ]


async def _snapshot(sessions) -> dict[str, list[tuple]]:
    async with sessions() as session:
        follows = await session.execute(
            select(
                Follow.external_userid,
                Follow.userid,
                Follow.status,
                Follow.state,
                Follow.add_way,
                Follow.added_at,
                Follow.ended_at,
            ).order_by(Follow.external_userid)
        )
        customers = await session.execute(
            select(Customer.external_userid, Customer.first_state, Customer.status).order_by(
                Customer.external_userid
            )
        )
        attributes = await session.execute(
            select(CustomerAttribute.external_userid, CustomerAttribute.value).order_by(
                CustomerAttribute.external_userid
            )
        )
        counts = {
            model.__tablename__: len((await session.scalars(select(model))).all())
            for model in (TimelineEntry, CustomerTag, TimerRow, OutboxRow)
        }
    return {
        "follows": [tuple(r) for r in follows],
        "customers": [tuple(r) for r in customers],
        "attributes": [tuple(r) for r in attributes],
        "counts": [tuple(sorted(counts.items()))],
    }


async def test_batch_equals_one_by_one(engine, sessions, clock) -> None:
    effects = Effects(clock)
    # A customer who left and comes back, one whose first channel is unknown, and a fresh one.
    async with sessions.begin() as session:
        await effects.apply(session, _events("wm_back", 1.0), source="s0")
        await effects.apply(
            session, [act.EndFollow("wm_back", "xiaolin", "del_follow_user", ended_at=2.0)], source="s1"
        )
        await effects.apply(session, [act.UpsertCustomer("wm_blank")], source="s2")
    later = {c: _events(c, 10.0) for c in ("wm_back", "wm_blank", "wm_new")}
    async with sessions.begin() as session:
        await effects.apply_batch(session, [(actions, f"e:{c}") for c, actions in later.items()])
    batched = await _snapshot(sessions)

    assert ("wm_back", "xiaolin", "active", "store_12", 1, 10.0, None) in batched["follows"]
    assert ("wm_blank", "store_12", "active") in batched["customers"]
    assert ("wm_back", "城市10") in batched["attributes"]
    # Replaying the same batch changes nothing.
    async with sessions.begin() as session:
        await effects.apply_batch(session, [(actions, f"e:{c}") for c, actions in later.items()])
    assert await _snapshot(sessions) == batched


async def test_an_older_attribute_in_a_later_batch_does_not_win(sessions, clock) -> None:
    effects = Effects(clock)
    new = act.SetAttribute("wm1", "city", "杭州", "city", "k2", "", 20.0)
    old = act.SetAttribute("wm1", "city", "上海", "city", "k1", "", 10.0)
    async with sessions.begin() as session:
        await effects.apply_batch(session, [([new], "a"), ([old], "b")])
    async with sessions() as session:
        assert await session.scalar(select(CustomerAttribute.value)) == "杭州"


def _stored(customer: str) -> Stored:
    event = ContactAdded(
        app="contact",
        create_time=1,
        route_key=RouteKey("event", "change_external_contact", "add_external_contact"),
        dedup_key=f"cec:{customer}",
        partition=f"cust:{customer}",
        userid="xiaolin",
        external_userid=customer,
    )
    return Stored("contact", f"<xml>{customer}</xml>", event)


async def test_a_row_whose_effects_fail_does_not_hold_back_its_batch(sessions, clock, monkeypatch) -> None:
    router = Router("probe")

    @router.on(ContactAdded)
    def on_add(event, deps):
        return [act.RecordTimeline(event.external_userid, "contact_added", "添加导购", 1.0, event.dedup_key)]

    inbox = Inbox(sessions, clock)
    # Rows parse from the stored plaintext: let the fixture's plaintext stand for the event.
    events = {f"<xml>{c}</xml>": _stored(c).event for c in ("wm_ok1", "wm_bad", "wm_ok2")}
    monkeypatch.setattr("bot.inbox.callback.parse", lambda app, plaintext: events[plaintext])
    effects = Effects(clock)

    async def record_timeline(self, session, items):
        if any(a.external_userid == "wm_bad" for a, _ in items):
            raise RuntimeError("constraint violated")
        await Effects._record_timeline(self, session, items)

    monkeypatch.setattr(effects, "_APPLIERS", {**Effects._APPLIERS, act.RecordTimeline: record_timeline})
    worker = InboxWorker(inbox, sessions, Dispatcher([router]), effects, None, clock, InboxSettings())
    try:
        async with sessions.begin() as session:
            await inbox.put_in(session, [_stored(c) for c in ("wm_ok1", "wm_bad", "wm_ok2")])
        assert await worker.run_once() == 3
    finally:
        await inbox.close()
    async with sessions() as session:
        rows = {r.partition_key: r for r in await session.scalars(select(InboxRow))}
        timeline = set(await session.scalars(select(TimelineEntry.external_userid)))
    assert rows["cust:wm_ok1"].status == rows["cust:wm_ok2"].status == "done"
    assert (rows["cust:wm_bad"].status, rows["cust:wm_bad"].attempts) == ("pending", 1)
    assert "RuntimeError" in rows["cust:wm_bad"].last_error
    assert timeline == {"wm_ok1", "wm_ok2"}


async def test_concurrent_welcome_history_lookups_are_answered_per_customer(sessions, clock) -> None:
    import asyncio

    from bot.store.readers import WelcomeHistories

    effects = Effects(clock)
    async with sessions.begin() as session:
        await effects.apply_batch(
            session,
            [
                ([act.UpsertFollow("wm_old", "zhangmei", added_at=1.0)], "a"),
                ([act.UpsertFollow("wm_new", "xiaolin", added_at=50.0)], "b"),
                ([act.TagCustomer("wm_tagged", "孕期", "阶段", "r", "k", 1.0)], "c"),
            ],
        )
    histories = WelcomeHistories(sessions)
    old, replayed, tagged, unknown = await asyncio.gather(
        histories.get("wm_old", "xiaolin", 60.0),  # followed another guide before
        histories.get("wm_new", "xiaolin", 50.0),  # the follow this very add created
        histories.get("wm_tagged", "xiaolin", 60.0),
        histories.get("wm_nobody", "xiaolin", 60.0),
    )
    assert (old.returning, replayed.returning, unknown.returning) == (True, False, False)
    assert (tagged.returning, tagged.tags) == (True, frozenset({"孕期"}))


async def test_outbox_claims_sends_with_a_deadline_first(sessions, clock) -> None:
    from bot.config import OutboxSettings
    from bot.outbox import OutboxSender

    effects = Effects(clock)
    later_welcome = act.SendWelcome("code-1", "wm2", text="你好", event_time=clock.timestamp())
    async with sessions.begin() as session:
        await effects.apply_batch(
            session,
            [([act.RefreshCustomer("wm1", reason_key="a")], "a"), ([later_welcome], "b")],
        )
    sender = OutboxSender(sessions, effects, None, clock, OutboxSettings())  # type: ignore[arg-type]
    first = await sender.claim(1)
    assert [row.kind for row in first] == ["send_welcome"]
