"""Channel sync against the emulator: creates codes, is idempotent, updates and deletes only what changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
