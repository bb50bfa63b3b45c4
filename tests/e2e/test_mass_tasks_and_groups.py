"""Mass-send tasks of SOP steps (create, check, remind, record) and customer-group membership, end to end."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from sqlalchemy import select

from bot import actions as act
from bot import errors
from bot import events as ev
from bot.mass_tasks import TIMER_KIND, decide_check, on_check_timer
from bot.runtime import default_routers
from bot.scheduler import Timer
from bot.store.models import GroupMember, MassTask, OutboxRow, TimelineEntry, TimerRow
from bot.wecom.emulator.world import Customer, Follow
from handlers import groups

HOUR = 3600.0
GUIDE = "xiaolin"
CUSTOMER = "wmMASScustomer000000000000000001"
KEY = f"{CUSTOMER}:new_contact:day3:1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def befriend(stack: Any, userid: str, external_userid: str) -> None:
    """Make the customer a contact of the guide in the emulated corp (no callback)."""
    world = stack.emu.world
    world.customers.setdefault(external_userid, Customer(external_userid, name="王妈妈"))
    world.follows[(userid, external_userid)] = Follow(
        userid=userid, external_userid=external_userid, createtime=0
    )


def ensure_timer_handler(stack: Any, kind: str, handler: Any) -> None:
    """Register `handler` unless the runtime already wires one for `kind`."""
    with contextlib.suppress(errors.ConfigError):
        stack.runtime.scheduler.register(kind, handler)


async def decide(stack: Any, *actions: act.Action) -> None:
    """Apply actions as a handler's decision would be applied, then run everything due."""
    async with stack.runtime.sessions.begin() as session:
        await stack.runtime.effects.apply(session, list(actions), source="test")
    await stack.drain()


def mass_task(**overrides: Any) -> act.CreateMassTask:
    fields: dict[str, Any] = {
        "key": KEY,
        "external_userid": CUSTOMER,
        "sender": GUIDE,
        "text": "王妈妈您好，宝宝满三个月啦，这份辅食指南送给您～",
        "enrollment_id": 11,
        "step_id": "day3",
    }
    fields.update(overrides)
    return act.CreateMassTask(**fields)


async def task_row(stack: Any) -> MassTask:
    async with stack.runtime.sessions() as session:
        return (await session.scalars(select(MassTask).where(MassTask.idem_key == f"mass:{KEY}"))).one()


async def timers(stack: Any, kind: str) -> list[TimerRow]:
    async with stack.runtime.sessions() as session:
        return list(
            (await session.scalars(select(TimerRow).where(TimerRow.kind == kind).order_by(TimerRow.id))).all()
        )


async def timeline(stack: Any, customer: str, kind: str) -> list[str]:
    async with stack.runtime.sessions() as session:
        rows = await session.scalars(
            select(TimelineEntry.summary)
            .where(TimelineEntry.external_userid == customer, TimelineEntry.kind == kind)
            .order_by(TimelineEntry.id)
        )
        return list(rows.all())


async def confirm(stack: Any, msgid: str, userid: str = GUIDE) -> dict[str, Any]:
    url = stack.emulator.make_url("/emulator/simulate/groupmsg_confirm")
    async with stack.http.post(url, json={"msgid": msgid, "userid": userid}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.fixture
async def mass_stack(stack) -> Any:
    ensure_timer_handler(stack, TIMER_KIND, on_check_timer)
    befriend(stack, GUIDE, CUSTOMER)
    return stack


@pytest.mark.parametrize(
    ("status", "check", "expected"),
    [
        (1, 1, "sent"),
        (2, 1, "not_friend"),
        (3, 3, "over_cap"),
        (0, 1, "remind"),
        (0, 2, "remind"),
        (0, 3, "unsent"),
        (None, 1, "not_sendable"),
    ],
)
def test_decide_check(status, check, expected) -> None:
    assert decide_check(status, check, max_reminders=2) == expected


def test_timer_becomes_a_check() -> None:
    payload = {"task_key": KEY, "msgid": "msgX", "external_userid": CUSTOMER, "sender": GUIDE, "check": 2}
    (check,) = on_check_timer(Timer(f"masscheck:{KEY}:2", TIMER_KIND, 0.0, payload), None)
    assert check == act.CheckMassTask(
        task_key=KEY, msgid="msgX", external_userid=CUSTOMER, sender=GUIDE, check=2
    )
    assert check.idem_key == f"masscheck:{KEY}:2"


async def test_task_created_confirmed_and_recorded_sent(mass_stack, tmp_path) -> None:
    stack = mass_stack
    image = tmp_path / "guide.png"
    image.write_bytes(PNG)
    attachments = (
        {"msgtype": "image", "image": {"media_path": str(image)}},
        {"msgtype": "link", "link": {"title": "辅食指南", "url": "https://siyu.example.com/r/tok"}},
    )
    created_at = stack.clock.timestamp()
    await decide(stack, mass_task(attachments=attachments))

    (call,) = stack.calls("add_msg_template")
    body = call["body"]
    assert (body["chat_type"], body["external_userid"], body["sender"]) == ("single", [CUSTOMER], GUIDE)
    assert body["text"] == {"content": mass_task().text}
    assert [a["msgtype"] for a in body["attachments"]] == ["image", "link"]
    assert body["attachments"][0]["image"]["media_id"] in stack.emu.world.media
    row = await task_row(stack)
    assert (row.status, row.userid, row.enrollment_id, row.step_id) == ("created", GUIDE, 11, "day3")
    assert row.msgid in stack.emu.world.group_msgs
    (timer,) = await timers(stack, TIMER_KIND)
    assert timer.key == f"masscheck:{KEY}:1" and timer.due_at == created_at + 4 * HOUR
    assert timer.payload == {
        "task_key": KEY,
        "msgid": row.msgid,
        "external_userid": CUSTOMER,
        "sender": GUIDE,
        "check": 1,
    }
    assert stack.calls("get_groupmsg_send_result") == []  # nothing is checked before it is due

    stack.clock.advance(HOUR)
    await confirm(stack, row.msgid)
    stack.clock.advance(3 * HOUR)
    await stack.drain()

    row = await task_row(stack)
    assert row.status == "sent" and row.sent_at == created_at + HOUR
    assert stack.calls("remind_groupmsg_send") == []
    assert await timeline(stack, CUSTOMER, "mass_task") == [
        f"已创建群发任务，等待导购 {GUIDE} 确认发送",
        f"导购 {GUIDE} 已发送群发任务",
    ]
    # The same decision again (a replayed step) is one outbox row and one WeCom task.
    await decide(stack, mass_task())
    assert len(stack.calls("add_msg_template")) == 1


async def test_unsent_task_is_reminded_then_recorded_unsent(mass_stack) -> None:
    stack = mass_stack
    await decide(stack, mass_task())
    msgid = (await task_row(stack)).msgid
    for reminders in (1, 2):
        stack.clock.advance(4 * HOUR)
        await stack.drain()
        row = await task_row(stack)
        assert (row.status, row.reminders) == ("reminded", reminders)
        assert len(stack.emu.world.group_msgs[msgid].reminders) == reminders
    stack.clock.advance(4 * HOUR)
    await stack.drain()
    row = await task_row(stack)
    assert (row.status, row.reminders) == ("unsent", 2)
    assert [t.key for t in await timers(stack, TIMER_KIND)] == [f"masscheck:{KEY}:{n}" for n in (1, 2, 3)]
    assert len(stack.calls("remind_groupmsg_send")) == 2
    stack.clock.advance(24 * HOUR)
    await stack.drain()
    assert len(stack.calls("get_groupmsg_send_result")) == 3  # no further checks once recorded unsent
    assert (await timeline(stack, CUSTOMER, "mass_task"))[1:] == [
        f"导购 {GUIDE} 尚未发送群发任务，已提醒（第 1 次）",
        f"导购 {GUIDE} 尚未发送群发任务，已提醒（第 2 次）",
        f"导购 {GUIDE} 未发送群发任务，已记为未发送",
    ]


async def test_reminder_refused_by_wecom_is_recorded_and_checked_again(mass_stack) -> None:
    stack = mass_stack
    await decide(stack, mass_task())
    stack.emu.add_fault("/cgi-bin/externalcontact/remind_groupmsg_send", errcode=41094)
    stack.clock.advance(4 * HOUR)
    await stack.drain()
    row = await task_row(stack)
    assert (row.status, row.reminders) == ("reminded", 0)
    assert [t.key for t in await timers(stack, TIMER_KIND)][-1] == f"masscheck:{KEY}:2"
    assert (await timeline(stack, CUSTOMER, "mass_task"))[
        -1
    ] == f"导购 {GUIDE} 尚未发送群发任务（今日提醒次数已用完）"


async def test_over_cap_is_recorded(mass_stack) -> None:
    stack = mass_stack
    stack.emu.options.groupmsg_cap_policy = "1_per_day"
    stack.emu.world.group_messages.append(
        {"msgid": "msgEARLIER", "userid": GUIDE, "external_userid": CUSTOMER, "at": stack.clock.timestamp()}
    )
    await decide(stack, mass_task())
    result = await confirm(stack, (await task_row(stack)).msgid)
    assert [s["status"] for s in result["send_list"]] == [3]
    stack.clock.advance(4 * HOUR)
    await stack.drain()
    assert (await task_row(stack)).status == "over_cap"
    assert (await timeline(stack, CUSTOMER, "mass_task"))[-1] == "群发任务超出客户接收上限，未送达"


async def test_customer_nobody_can_send_to_is_not_sendable(mass_stack) -> None:
    stack = mass_stack
    await decide(stack, mass_task(sender="zhangmei"))  # not her guide: WeCom answers 41048
    (call,) = stack.calls("add_msg_template")
    assert call["errcode"] == 41048
    row = await task_row(stack)
    assert (row.status, row.msgid, row.userid) == ("not_sendable", "", "zhangmei")
    assert await timers(stack, TIMER_KIND) == []
    async with stack.runtime.sessions() as session:
        outbox = (await session.scalars(select(OutboxRow).where(OutboxRow.idem_key == f"mass:{KEY}"))).one()
    assert outbox.status == "sent" and outbox.attempts == 1  # an outcome, not a send to retry


# --- customer groups -----------------------------------------------------------------------------


@pytest.fixture
async def group_stack(stack_factory) -> Any:
    routers = default_routers()
    if groups.router not in routers:
        routers = (*routers, groups.router)
    return await stack_factory(routers=routers)


async def members(stack: Any, chat_id: str) -> dict[str, float | None]:
    async with stack.runtime.sessions() as session:
        rows = await session.execute(
            select(GroupMember.external_userid, GroupMember.left_at).where(GroupMember.chat_id == chat_id)
        )
        return dict(rows.all())


async def stage_checks(stack: Any) -> list[tuple[str, str]]:
    """(customer, trigger) of the stage_check timers group changes made; the key names both too."""
    found = []
    for timer in await timers(stack, "stage_check"):
        customer, trigger = timer.payload["external_userid"], timer.payload["trigger"]
        if trigger not in ("group_joined", "group_left"):
            continue  # the lifecycle's own follow-up checks
        assert timer.key.startswith(f"stage:{customer}:{trigger}:")
        found.append((customer, trigger))
    return found


def test_group_events_become_refreshes() -> None:
    common = {"app": "contact", "route_key": ev.RouteKey("event", "change_external_chat"), "chat_id": "wrG"}
    update = ev.GroupUpdated(dedup_key="chat:u1", update_detail="add_member", **common)
    assert groups.group_actions(update) == [act.RefreshGroup("wrG", reason_key="chat:u1")]
    renamed = ev.GroupUpdated(dedup_key="chat:u2", update_detail="change_name", **common)
    assert groups.group_actions(renamed) == []
    created = ev.GroupCreated(dedup_key="chat:c", **common)
    assert groups.group_actions(created) == [act.RefreshGroup("wrG", reason_key="chat:c")]
    dismissed = ev.GroupDismissed(dedup_key="chat:d", **common)
    assert groups.group_actions(dismissed) == [act.RefreshGroup("wrG", reason_key="dismissed:chat:d")]


async def test_join_and_leave_update_members_and_schedule_stage_checks(group_stack) -> None:
    stack = group_stack
    chat_id = (await stack.emu.simulate_group_event("create", owner=GUIDE, name="小禾妈妈群"))["chat_id"]
    await stack.drain()
    assert await members(stack, chat_id) == {}
    (get,) = stack.calls("groupchat/get")
    assert get["body"]["chat_id"] == chat_id

    joined = stack.clock.timestamp()
    await stack.emu.simulate_group_join(chat_id, "wmJOINa000000000000000000000001")
    await stack.emu.simulate_group_join(chat_id, "wmJOINb000000000000000000000002", join_scene=0)
    await stack.drain()
    assert await members(stack, chat_id) == {
        "wmJOINa000000000000000000000001": None,
        "wmJOINb000000000000000000000002": None,
    }
    assert sorted(await stage_checks(stack)) == [
        ("wmJOINa000000000000000000000001", "group_joined"),
        ("wmJOINb000000000000000000000002", "group_joined"),
    ]
    check = (await timers(stack, "stage_check"))[0]
    assert (check.payload["trigger"], check.due_at, check.payload["chat_id"]) == (
        "group_joined",
        joined,
        chat_id,
    )

    stack.clock.advance(60)
    await stack.emu.simulate_group_leave(chat_id, "wmJOINa000000000000000000000001")
    await stack.drain()
    assert await members(stack, chat_id) == {
        "wmJOINa000000000000000000000001": stack.clock.timestamp(),
        "wmJOINb000000000000000000000002": None,
    }
    # Only the one who left is checked: b's membership did not change.
    assert (await stage_checks(stack))[2:] == [("wmJOINa000000000000000000000001", "group_left")]

    stack.clock.advance(60)
    before = len(stack.calls("groupchat/get"))
    await stack.emu.simulate_group_event("dismiss", chat_id=chat_id)
    await stack.drain()
    assert len(stack.calls("groupchat/get")) == before  # a dismissed group is not asked about
    assert await members(stack, chat_id) == {
        "wmJOINa000000000000000000000001": stack.clock.timestamp() - 60,
        "wmJOINb000000000000000000000002": stack.clock.timestamp(),
    }
    assert (await stage_checks(stack))[3:] == [("wmJOINb000000000000000000000002", "group_left")]


async def test_groupchat_get_reflects_simulated_changes(group_stack) -> None:
    stack = group_stack
    chat_id = (await stack.emu.simulate_group_event("create", owner=GUIDE, name="小禾妈妈群"))["chat_id"]
    await stack.emu.simulate_group_join(chat_id, "wmJOINa000000000000000000000001", name="李妈妈")
    answer = await stack.runtime.client.get_group_chat(chat_id, need_name=True)
    group = answer["group_chat"]
    assert (group["chat_id"], group["owner"], group["name"]) == (chat_id, GUIDE, "小禾妈妈群")
    assert [(m["userid"], m["type"], m["join_scene"], m["name"]) for m in group["member_list"]] == [
        (GUIDE, 1, 1, "小林"),
        ("wmJOINa000000000000000000000001", 2, 3, "李妈妈"),
    ]
    assert group["member_version"] == stack.emu.world.groups[chat_id]["member_version"]
    await stack.emu.simulate_group_event("dismiss", chat_id=chat_id)
    with pytest.raises(errors.Permanent) as gone:
        await stack.runtime.client.get_group_chat(chat_id)
    assert gone.value.errcode == 40050
