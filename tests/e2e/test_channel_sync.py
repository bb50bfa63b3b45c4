"""Channel sync against the emulator: creates codes, is idempotent, updates and deletes only what changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from bot.actions import Schedule
from bot.channel_sync import TIMER_KIND, stored_codes, sync
from bot.channels import Channel, load_channels_text
from bot.store.models import Follow, TimerRow

MUTATIONS = ("add_contact_way", "update_contact_way", "del_contact_way")

YAML = """\
channels:
  - key: store_jingan
    name: 静安店
    state: store_jingan
    guides: [zhangmei]
    backup: xiaolin
    daily_cap: 2
  - key: live
    name: 线上直播
    state: live_room
    guides: [xiaolin, zhangmei]
    daily_cap: 2
    backup: wangqiang
  - key: expo
    name: 母婴展会
    state: expo_2026
    guides: [wangqiang]
"""


def channels(text: str = YAML) -> tuple[Channel, ...]:
    return load_channels_text(text)


def mutations(stack: Any) -> list[dict[str, Any]]:
    return [e for suffix in MUTATIONS for e in stack.calls(suffix)]


async def run(stack: Any, chs: tuple[Channel, ...], adds: Any = None) -> list[Any]:
    rt = stack.runtime
    day = stack.clock.now().date()
    return await sync(rt.client, rt.sessions, chs, day, adds, now=stack.clock.timestamp())


async def test_first_sync_creates_codes_and_second_changes_nothing(stack) -> None:
    results = await run(stack, channels())
    assert [(r.key, r.change) for r in results] == [
        ("store_jingan", "added"),
        ("live", "added"),
        ("expo", "added"),
    ]
    adds = stack.calls("add_contact_way")
    assert [(c["body"]["type"], c["body"]["scene"], c["body"]["state"], c["body"]["user"]) for c in adds] == [
        (2, 2, "store_jingan", ["zhangmei"]),
        (2, 2, "live_room", ["xiaolin", "zhangmei"]),
        (1, 2, "expo_2026", ["wangqiang"]),
    ]
    stored = await stored_codes(stack.runtime.sessions)
    for result in results:
        row = stored[result.key]
        assert row.config_id and row.config_id == result.config_id
        assert row.qr_code.startswith("https://") and row.qr_code == result.qr_code
        way = stack.emu.world.contact_ways[row.config_id]
        assert (way.state, way.user) == (result.state, list(result.users))

    before = len(mutations(stack))
    again = await run(stack, channels())
    assert [r.change for r in again] == ["unchanged"] * 3
    assert len(mutations(stack)) == before  # idempotent: no WeCom mutation at all
    assert [r.config_id for r in again] == [r.config_id for r in results]


async def test_changed_guides_update_only_that_code_and_removed_channel_is_deleted(stack) -> None:
    first = {r.key: r for r in await run(stack, channels())}
    changed = YAML.replace("guides: [xiaolin, zhangmei]", "guides: [xiaolin, wangqiang]")
    results = {r.key: r for r in await run(stack, channels(changed))}
    assert {k: r.change for k, r in results.items()} == {
        "store_jingan": "unchanged",
        "live": "updated",
        "expo": "unchanged",
    }
    (update,) = stack.calls("update_contact_way")
    assert update["body"]["config_id"] == first["live"].config_id
    assert update["body"]["user"] == ["xiaolin", "wangqiang"]
    assert results["live"].config_id == first["live"].config_id  # same QR code, new guides
    assert stack.emu.world.contact_ways[first["live"].config_id].user == ["xiaolin", "wangqiang"]

    without_expo = changed.split("  - key: expo")[0]
    results = {r.key: r for r in await run(stack, channels(without_expo))}
    assert results["expo"].change == "deleted"
    (deleted,) = stack.calls("del_contact_way")
    assert deleted["body"]["config_id"] == first["expo"].config_id
    assert first["expo"].config_id not in stack.emu.world.contact_ways
    assert "expo" not in await stored_codes(stack.runtime.sessions)


async def test_guide_at_cap_is_dropped_from_the_code(stack) -> None:
    await run(stack, channels())
    now = stack.clock.timestamp()
    async with stack.runtime.sessions.begin() as session:
        for n in range(2):  # xiaolin reached the live code's cap of 2 today
            session.add(
                Follow(
                    external_userid=f"wm{n}",
                    userid="xiaolin",
                    state="live_room",
                    added_at=now,
                    updated_at=now,
                )
            )
        # Yesterday's adds and another channel's adds do not count.
        session.add(
            Follow(
                external_userid="wmy",
                userid="zhangmei",
                state="live_room",
                added_at=now - 86400,
                updated_at=now,
            )
        )
        session.add(
            Follow(external_userid="wmz", userid="zhangmei", state="other", added_at=now, updated_at=now)
        )
    results = {r.key: r for r in await run(stack, channels())}
    assert results["live"].change == "updated"
    assert results["live"].users == ("zhangmei",)
    assert [c["body"]["user"] for c in stack.calls("update_contact_way")] == [["zhangmei"]]
    assert {k: r.change for k, r in results.items() if k != "live"} == {
        "store_jingan": "unchanged",
        "expo": "unchanged",
    }


async def test_one_failing_channel_does_not_stop_the_others(stack) -> None:
    text = YAML.replace("guides: [wangqiang]", "guides: [nobody_here]")
    results = {r.key: r for r in await run(stack, channels(text))}
    assert results["expo"].change == "failed" and results["expo"].error
    assert results["store_jingan"].change == results["live"].change == "added"
    assert "expo" not in await stored_codes(stack.runtime.sessions)


async def test_dry_run_calls_nothing(stack) -> None:
    rt = stack.runtime
    day = stack.clock.now().date()
    results = await sync(rt.client, rt.sessions, channels(), day, now=stack.clock.timestamp(), dry_run=True)
    assert [r.change for r in results] == ["would add"] * 3
    assert mutations(stack) == []


async def test_daily_timer_syncs_through_the_outbox_and_schedules_tomorrow(stack) -> None:
    rt = stack.runtime  # the runtime registers the channels_sync timer handler itself
    today = stack.clock.now().date()
    async with rt.sessions.begin() as session:
        due = stack.clock.timestamp()
        schedule = Schedule(f"{TIMER_KIND}:{today}", TIMER_KIND, due, {"day": today.isoformat()})
        await rt.effects.apply(session, [schedule], source="test")
    await stack.drain()
    # The service's content library holds the sample channels.yaml: every channel got a code.
    stored = await stored_codes(rt.sessions)
    assert len(stored) >= 6 and all(row.config_id for row in stored.values())
    assert len(stack.calls("add_contact_way")) == len(stored)
    async with rt.sessions() as session:
        keys = set((await session.scalars(select(TimerRow.key).where(TimerRow.kind == TIMER_KIND))).all())
    assert f"{TIMER_KIND}:{today + dt.timedelta(days=1)}" in keys


def codes_by_state(stack: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for way in stack.emu.world.contact_ways.values():
        out.setdefault(way.state, []).append(way.config_id)
    return out


async def assert_one_code_per_channel_and_stored(stack: Any, chs: tuple[Channel, ...]) -> None:
    stored = await stored_codes(stack.runtime.sessions)
    by_state = codes_by_state(stack)
    for channel in chs:
        assert by_state[channel.state] == [stored[channel.key].config_id], channel.key


async def test_a_crash_after_add_contact_way_is_adopted_not_made_twice(stack, monkeypatch) -> None:
    import bot.channel_sync as channel_sync

    real_store = channel_sync._store
    crashes = []

    async def crash_once(*args: Any, **kwargs: Any) -> None:
        if not crashes:
            crashes.append(args[1])
            raise RuntimeError("process killed")  # not a SiyuError: the whole sync dies here
        await real_store(*args, **kwargs)

    monkeypatch.setattr(channel_sync, "_store", crash_once)
    with pytest.raises(RuntimeError, match="process killed"):
        await run(stack, channels())
    assert crashes == ["store_jingan"]
    assert await stored_codes(stack.runtime.sessions) == {}
    (orphan,) = codes_by_state(stack)["store_jingan"]  # WeCom holds a code we do not know

    results = {r.key: r for r in await run(stack, channels())}
    assert {k: r.change for k, r in results.items()} == {
        "store_jingan": "adopted",
        "live": "added",
        "expo": "added",
    }
    assert results["store_jingan"].config_id == orphan
    assert results["store_jingan"].qr_code == stack.emu.world.contact_ways[orphan].qr_code
    assert [c["body"]["state"] for c in stack.calls("add_contact_way")] == [
        "store_jingan",
        "live_room",
        "expo_2026",
    ]
    await assert_one_code_per_channel_and_stored(stack, channels())

    before = len(mutations(stack))
    again = await run(stack, channels())
    assert [r.change for r in again] == ["unchanged"] * 3
    assert len(mutations(stack)) == before
    await assert_one_code_per_channel_and_stored(stack, channels())


async def test_codes_made_behind_the_database_are_adopted_and_duplicates_deleted(stack) -> None:
    client = stack.runtime.client
    # Two runs that died before storing, and another tool's code the sync must leave alone.
    first = await client.add_contact_way(
        2, 2, user=["xiaolin", "zhangmei"], state="live_room", skip_verify=True
    )
    stack.clock.advance(seconds=1)
    second = await client.add_contact_way(
        2, 2, user=["xiaolin", "zhangmei"], state="live_room", skip_verify=True
    )
    foreign = await client.add_contact_way(1, 2, user=["xiaolin"], state="other_brand")
    stack.emu.clear_journal()

    results = {r.key: r for r in await run(stack, channels())}
    assert results["live"].change == "adopted, 1 duplicate deleted"
    assert results["live"].config_id == second["config_id"]  # the newest is kept
    assert [c["body"]["config_id"] for c in stack.calls("del_contact_way")] == [first["config_id"]]
    assert [c["body"]["state"] for c in stack.calls("add_contact_way")] == ["store_jingan", "expo_2026"]
    assert codes_by_state(stack)["other_brand"] == [foreign["config_id"]]
    await assert_one_code_per_channel_and_stored(stack, channels())

    before = len(mutations(stack))
    assert [r.change for r in await run(stack, channels())] == ["unchanged"] * 3
    assert len(mutations(stack)) == before


async def test_a_replace_that_died_after_the_add_adopts_the_new_code(stack) -> None:
    await run(stack, channels())
    stored = await stored_codes(stack.runtime.sessions)
    # expo becomes a two-guide code: type 1 -> 2 is a replace (delete + add); the run dies before storing.
    changed = YAML.replace("guides: [wangqiang]", "guides: [wangqiang, xiaolin]")
    client = stack.runtime.client
    await client.del_contact_way(stored["expo"].config_id)
    made = await client.add_contact_way(
        2, 2, user=["wangqiang", "xiaolin"], state="expo_2026", skip_verify=True
    )
    stack.emu.clear_journal()

    results = {r.key: r for r in await run(stack, channels(changed))}
    assert results["expo"].change == "adopted"
    assert results["expo"].config_id == made["config_id"]
    assert mutations(stack) == []
    await assert_one_code_per_channel_and_stored(stack, channels(changed))


async def test_a_duplicate_of_a_live_stored_code_is_deleted(stack) -> None:
    await run(stack, channels())
    stored = await stored_codes(stack.runtime.sessions)
    extra = await stack.runtime.client.add_contact_way(1, 2, user=["wangqiang"], state="expo_2026")
    results = {r.key: r for r in await run(stack, channels())}
    assert results["expo"].change == "unchanged, 1 duplicate deleted"
    assert results["expo"].config_id == stored["expo"].config_id
    assert extra["config_id"] not in stack.emu.world.contact_ways
    await assert_one_code_per_channel_and_stored(stack, channels())
