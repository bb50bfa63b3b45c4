"""The chat archive (会话内容存档) end to end: msgaudit_notify -> a pull from the stored seq -> tags from
the customer's own words (never a guide's), continuing across a restart without handling anything twice."""

from __future__ import annotations

from sqlalchemy import select

from bot import archive
from bot.archive import CURSOR_NAME, POLL_TIMER
from bot.store.models import (
    ArchiveCursor,
    CustomerAttribute,
    CustomerTag,
    InboxRow,
    OutboxRow,
    TimelineEntry,
    TimerRow,
)
from bot.wecom import callback

ARCHIVE_ON = {"archive.enabled": True}


async def tags_of(stack) -> dict[str, set[str]]:
    async with stack.runtime.sessions() as session:
        out: dict[str, set[str]] = {}
        for tag in await session.scalars(select(CustomerTag)):
            out.setdefault(tag.external_userid, set()).add(tag.tag_name)
        return out


async def stored_seq(stack) -> int:
    async with stack.runtime.sessions() as session:
        return int(await session.scalar(select(ArchiveCursor.seq).where(ArchiveCursor.name == CURSOR_NAME)))


async def test_archive_tags_the_customers_words_only_and_continues_after_a_restart(
    backend, stack_factory
) -> None:
    stack = await stack_factory(**backend, **ARCHIVE_ON)
    cust = (await stack.emu.simulate_add_contact(userid="xiaolin"))["external_userid"]
    other = (await stack.emu.simulate_add_contact(userid="xiaolin"))["external_userid"]
    await stack.drain()

    # The guide's own words would tag 宝妈 and an age: they are not the customer's.
    await stack.emu.simulate_archive_message("xiaolin", "宝宝八个月了，奶粉喝几段", tolist=[cust])
    stack.clock.advance(seconds=1)
    sent = await stack.emu.simulate_archive_message(cust, "想囤点纸尿裤")
    assert sent["delivery"]["delivered"] and sent["seq"] == 2
    await stack.drain()
    assert await tags_of(stack) == {cust: {"囤货", "纸尿裤"}}
    async with stack.runtime.sessions() as session:
        assert list(await session.scalars(select(CustomerAttribute))) == []
    feed = stack.emu.archive_feed
    assert feed.pulls[0][0] == 0 and await stored_seq(stack) == 2

    # In a customer group only the sender's own words tag the sender. (msgaudit_notify carries no
    # id: two in the same second are one delivery to us, so each message here comes a second later.)
    stack.clock.advance(seconds=1)
    await stack.emu.simulate_archive_message(
        other, "宝宝八个月了", tolist=["xiaolin", cust], roomid="wrGROUP1"
    )
    await stack.drain()
    tags = await tags_of(stack)
    assert tags[cust] == {"囤货", "纸尿裤"} and "宝妈" in tags[other]
    assert await stored_seq(stack) == 3

    # A restart: the next pull starts from the stored seq; nothing is pulled or handled twice.
    await stack.service.close()
    await stack.restart()
    stack.clock.advance(seconds=1)
    pulls_before = len(feed.pulls)
    await stack.emu.simulate_archive_message(cust, "宝宝一岁半了")
    await stack.drain()
    assert feed.pulls[pulls_before][0] == 3
    assert await stored_seq(stack) == 4
    stack.clock.advance(seconds=1)
    await stack.emu.simulate_archive_message(cust, "", msgtype="image")
    await stack.drain()
    async with stack.runtime.sessions() as session:
        rows = list(await session.scalars(select(InboxRow).where(InboxRow.app == callback.ARCHIVE_ITEM)))
        timeline = list(
            await session.scalars(select(TimelineEntry).where(TimelineEntry.kind.like("%_message")))
        )
    assert len(rows) == 5 and {r.status for r in rows} == {"done"}
    kinds = sorted((t.external_userid == cust, t.kind) for t in timeline)
    assert kinds == [
        (False, "chat_message"),
        (True, "chat_message"),
        (True, "chat_message"),
        (True, "chat_message"),
        (True, "guide_message"),
    ]
    assert "宝妈" in (await tags_of(stack))[cust]


async def test_notify_without_an_archive_configured_pulls_nothing(stack) -> None:
    cust = (await stack.emu.simulate_add_contact(userid="xiaolin"))["external_userid"]
    await stack.emu.simulate_archive_message(cust, "宝宝八个月了")
    await stack.drain()
    assert stack.emu.archive_feed.pulls == []
    assert cust not in await tags_of(stack)


async def pending_polls(stack) -> list[str]:
    async with stack.runtime.sessions() as session:
        query = select(TimerRow.key).where(TimerRow.kind == POLL_TIMER, TimerRow.status == "pending")
        return list(await session.scalars(query))


async def test_a_message_without_a_notify_is_pulled_by_the_periodic_poll(stack_factory) -> None:
    stack = await stack_factory(**ARCHIVE_ON)
    rt = stack.runtime
    interval = stack.settings.archive.poll_interval_seconds
    assert interval == 300  # the documented default in config.yaml
    cust = (await stack.emu.simulate_add_contact(userid="xiaolin"))["external_userid"]
    await stack.drain()

    # What start_workers does when the archive is enabled; two replicas starting arm one timer.
    first = archive.schedule_next_poll(stack.clock.timestamp(), stack.settings)
    async with rt.sessions.begin() as session:
        await rt.effects.apply(session, [first], source="startup")
    async with rt.sessions.begin() as session:
        await rt.effects.apply(
            session, [archive.schedule_next_poll(stack.clock.timestamp(), stack.settings)], source="startup"
        )
    slot = first.payload["slot"]
    assert await pending_polls(stack) == [f"{POLL_TIMER}:{interval}:{slot}"]
    assert 0 < first.due_at - stack.clock.timestamp() <= interval

    # The notify is lost: nothing pulls until the interval is over.
    await stack.emu.simulate_archive_message(cust, "想囤点纸尿裤", notify=False)
    await stack.drain()
    feed = stack.emu.archive_feed
    assert feed.pulls == [] and cust not in await tags_of(stack)

    stack.clock.advance(seconds=first.due_at - stack.clock.timestamp())
    await stack.drain()
    assert [seq for seq, _ in feed.pulls] == [0]
    assert await stored_seq(stack) == 1
    assert await tags_of(stack) == {cust: {"囤货", "纸尿裤"}}
    assert await pending_polls(stack) == [f"{POLL_TIMER}:{interval}:{slot + 1}"]  # re-armed, once

    # The next interval pulls from the stored seq.
    await stack.emu.simulate_archive_message(cust, "宝宝一岁半了", notify=False)
    stack.clock.advance(seconds=interval)
    await stack.drain()
    assert [seq for seq, _ in feed.pulls] == [0, 1]
    assert await stored_seq(stack) == 2 and "宝妈" in (await tags_of(stack))[cust]

    # Down for ten intervals: one pull on return, not one per missed interval, and the chain goes on.
    stack.clock.advance(seconds=10 * interval)
    await stack.drain()
    assert len(feed.pulls) == 3
    assert await pending_polls(stack) == [f"{POLL_TIMER}:{interval}:{slot + 12}"]
    async with rt.sessions() as session:
        keys = list(await session.scalars(select(OutboxRow.idem_key).where(OutboxRow.kind == "archive_sync")))
    assert sorted(keys) == [f"archivesync:{POLL_TIMER}:{interval}:{slot + n}" for n in (0, 1, 2)]
