"""Emulator: mass sending (企业群发) — tasks, member confirmation, caps, reminders, cancel (§7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bot.clock import SHANGHAI
from bot.wecom.emulator.groupmsg_model import cap_period, over_cap
from bot.wecom.emulator.world import Customer, Follow

API = "externalcontact/"


def befriend(emu_state, userid: str, external_userid: str, *, at: int = 0, tags: list[str] | None = None):
    """Make `external_userid` a customer of member `userid` (no callback: the world directly)."""
    emu_state.world.customers.setdefault(external_userid, Customer(external_userid, name=external_userid))
    emu_state.world.follows[(userid, external_userid)] = Follow(
        userid=userid, external_userid=external_userid, createtime=at, tag_ids=list(tags or [])
    )


@pytest.fixture
def call(emu_call):
    """`await call("add_msg_template", {...})` with the contact app's token."""

    async def post(api: str, body: dict[str, Any]) -> dict[str, Any]:
        return await emu_call("contact", "POST", API + api, json=body)

    return post


@pytest.fixture
def customers(emu_state) -> list[str]:
    """wmA and wmB follow 小林, wmC follows 张美."""
    befriend(emu_state, "xiaolin", "wmA")
    befriend(emu_state, "xiaolin", "wmB")
    befriend(emu_state, "zhangmei", "wmC")
    return ["wmA", "wmB", "wmC"]


async def confirm(emu_client, msgid: str, userid: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """POST /emulator/simulate/groupmsg_confirm; (HTTP status, body)."""
    resp = await emu_client.post(
        "/emulator/simulate/groupmsg_confirm", json={"msgid": msgid, "userid": userid, **extra}
    )
    return resp.status, await resp.json()


async def send_single(call, ids: list[str], text: str = "双十一会员日", **extra: Any) -> dict[str, Any]:
    body = await call("add_msg_template", {"external_userid": ids, "text": {"content": text}, **extra})
    assert body["errcode"] == 0, body
    return body


async def statuses(call, msgid: str, userid: str) -> dict[str, int]:
    body = await call("get_groupmsg_send_result", {"msgid": msgid, "userid": userid})
    assert body["errcode"] == 0, body
    return {item["external_userid"]: item["status"] for item in body["send_list"]}


async def test_nothing_is_delivered_until_each_member_confirms(call, customers, emu_state, emu_client, clock):
    made = await send_single(call, [*customers, "wmUNKNOWN"])
    msgid = made["msgid"]
    assert made["fail_list"] == ["wmUNKNOWN"] and msgid.startswith("msg")
    tasks = await call("get_groupmsg_task", {"msgid": msgid})
    assert tasks["task_list"] == [{"userid": "xiaolin", "status": 0}, {"userid": "zhangmei", "status": 0}]
    assert await statuses(call, msgid, "xiaolin") == {"wmA": 0, "wmB": 0}
    assert emu_state.world.group_messages == []

    clock.advance(minutes=5)
    status, result = await confirm(emu_client, msgid, "xiaolin")
    assert status == 200 and [s["status"] for s in result["send_list"]] == [1, 1]
    now = int(clock.timestamp())
    sent = await call("get_groupmsg_send_result", {"msgid": msgid, "userid": "xiaolin"})
    assert sent["send_list"] == [
        {"external_userid": "wmA", "userid": "xiaolin", "status": 1, "send_time": now},
        {"external_userid": "wmB", "userid": "xiaolin", "status": 1, "send_time": now},
    ]
    tasks = await call("get_groupmsg_task", {"msgid": msgid})
    assert tasks["task_list"] == [
        {"userid": "xiaolin", "status": 2, "send_time": now},
        {"userid": "zhangmei", "status": 0},
    ]
    assert await statuses(call, msgid, "zhangmei") == {"wmC": 0}
    received = await (await emu_client.get("/emulator/groupmsg/received")).json()
    assert [(r["external_userid"], r["userid"], r["text"]) for r in received] == [
        ("wmA", "xiaolin", {"content": "双十一会员日"}),
        ("wmB", "xiaolin", {"content": "双十一会员日"}),
    ]
    listed = await (await emu_client.get("/emulator/groupmsg")).json()
    assert [(m["msgid"], [t["status"] for t in m["task_list"]]) for m in listed] == [(msgid, [2, 0])]
    status, again = await confirm(emu_client, msgid, "xiaolin")
    assert status == 400 and "already sent" in again["error"]


async def test_sender_limits_recipients_to_own_customers(call, customers, emu_state):
    made = await send_single(call, ["wmA", "wmC"], sender="xiaolin")
    assert made["fail_list"] == ["wmC"]
    assert await statuses(call, made["msgid"], "xiaolin") == {"wmA": 0}
    assert await statuses(call, made["msgid"], "zhangmei") == {}
    nobody = await call(
        "add_msg_template", {"external_userid": ["wmC", "wmX"], "sender": "xiaolin", "text": {"content": "x"}}
    )
    assert nobody["errcode"] == 41048
    everyone = await call("add_msg_template", {"sender": "xiaolin", "text": {"content": "x"}})
    assert await statuses(call, everyone["msgid"], "xiaolin") == {"wmA": 0, "wmB": 0}


async def test_customer_gone_before_confirmation_is_status_2(call, customers, emu_state, emu_client):
    made = await send_single(call, ["wmA", "wmB"])
    del emu_state.world.follows[("xiaolin", "wmB")]  # the customer deleted the guide meanwhile
    _, result = await confirm(emu_client, made["msgid"], "xiaolin")
    assert {s["external_userid"]: s["status"] for s in result["send_list"]} == {"wmA": 1, "wmB": 2}
    assert "send_time" not in result["send_list"][1]
    assert [m["external_userid"] for m in emu_state.world.group_messages] == ["wmA"]


async def test_last_added_follower_gets_the_task_without_sender(call, emu_state):
    befriend(emu_state, "xiaolin", "wmA", at=100)
    befriend(emu_state, "zhangmei", "wmA", at=200)
    made = await send_single(call, ["wmA"])
    tasks = await call("get_groupmsg_task", {"msgid": made["msgid"]})
    assert [t["userid"] for t in tasks["task_list"]] == ["zhangmei"]


# Clock starts Sunday 2026-11-22 10:00 Asia/Shanghai; each case: the cap, then when it frees up.
CAP_CASES = [
    ("1_per_day", 1, dt.timedelta(hours=14)),  # Monday 00:00
    ("7_per_week", 7, dt.timedelta(hours=14)),  # the week starts on Monday
    ("4_per_month", 4, dt.timedelta(days=8, hours=14)),  # December 1st
    ("monthly_days", 30, dt.timedelta(days=8, hours=14)),  # November has 30 days
]


@pytest.mark.parametrize(("policy", "cap", "until_next_period"), CAP_CASES)
async def test_cap_policy_gives_status_3_over_the_cap(
    call, emu_state, emu_client, clock, policy, cap, until_next_period
):
    emu_state.options.groupmsg_cap_policy = policy
    befriend(emu_state, "xiaolin", "wmA")
    befriend(emu_state, "xiaolin", "wmB")

    async def send_to_a(extra: list[str] = ()) -> dict[str, int]:
        made = await send_single(call, ["wmA", *extra])
        _, result = await confirm(emu_client, made["msgid"], "xiaolin")
        return {s["external_userid"]: s["status"] for s in result["send_list"]}

    for _ in range(cap):
        assert await send_to_a() == {"wmA": 1}
    # Over the cap for wmA only; wmB has received nothing yet.
    assert await send_to_a(["wmB"]) == {"wmA": 3, "wmB": 1}
    clock.advance(until_next_period)
    assert await send_to_a() == {"wmA": 1}
    assert sum(m["external_userid"] == "wmA" for m in emu_state.world.group_messages) == cap + 1


@pytest.mark.parametrize(
    ("policy", "when", "start", "allowed"),
    [
        ("1_per_day", dt.datetime(2027, 2, 10, 23, 59), dt.datetime(2027, 2, 10), 1),
        ("7_per_week", dt.datetime(2027, 2, 14, 8, 0), dt.datetime(2027, 2, 8), 7),  # Sunday -> Monday
        ("4_per_month", dt.datetime(2027, 2, 28, 12), dt.datetime(2027, 2, 1), 4),
        ("monthly_days", dt.datetime(2027, 2, 28, 12), dt.datetime(2027, 2, 1), 28),
        ("monthly_days", dt.datetime(2028, 2, 3), dt.datetime(2028, 2, 1), 29),
        ("monthly_days", dt.datetime(2027, 1, 31), dt.datetime(2027, 1, 1), 31),
    ],
)
def test_cap_period(policy, when, start, allowed):
    now = when.replace(tzinfo=SHANGHAI).timestamp()
    assert cap_period(policy, now) == (start.replace(tzinfo=SHANGHAI).timestamp(), allowed)


def test_over_cap_counts_only_the_current_period():
    now = dt.datetime(2027, 3, 1, 9, tzinfo=SHANGHAI).timestamp()
    yesterday, today = now - 86400, now - 3600
    assert over_cap("1_per_day", [yesterday], now) is False
    assert over_cap("1_per_day", [yesterday, today], now) is True
    assert over_cap("4_per_month", [today] * 3, now) is False
    assert over_cap("4_per_month", [today] * 4, now) is True
    with pytest.raises(ValueError):
        cap_period("2_per_hour", now)


async def test_remind_three_times_per_24_hours(call, customers, clock):
    msgid = (await send_single(call, ["wmA"]))["msgid"]
    for _ in range(3):
        assert (await call("remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 0
        clock.advance(hours=1)
    clock.advance(hours=20)  # 23 h after the first reminder
    assert (await call("remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 41094
    clock.advance(hours=1)  # the first reminder is now 24 h old
    assert (await call("remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 0
    assert (await call("remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 41094


async def test_cancel_then_41093(call, customers, emu_client, emu_state):
    msgid = (await send_single(call, ["wmA"]))["msgid"]
    assert (await call("cancel_groupmsg_send", {"msgid": msgid}))["errcode"] == 0
    assert (await call("cancel_groupmsg_send", {"msgid": msgid}))["errcode"] == 41093
    assert (await call("remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 41093
    status, body = await confirm(emu_client, msgid, "xiaolin")
    assert status == 400 and "cancelled" in body["error"]
    assert await statuses(call, msgid, "xiaolin") == {"wmA": 0}
    assert emu_state.world.group_messages == []


@pytest.mark.parametrize(
    "api", ["get_groupmsg_task", "get_groupmsg_send_result", "remind_groupmsg_send", "cancel_groupmsg_send"]
)
async def test_missing_and_unknown_msgid(call, api):
    assert (await call(api, {"userid": "xiaolin"}))["errcode"] == 41046
    assert (await call(api, {"msgid": "msgNOPE", "userid": "xiaolin"}))["errcode"] == 41047


def _image(media_id: str) -> dict[str, Any]:
    return {"msgtype": "image", "image": {"media_id": media_id}}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"external_userid": ["wmA"], "text": {"content": "宝" * 1334}}, 45002),  # 4002 bytes
        ({"external_userid": ["wmA"]}, 40063),  # neither text nor attachments
        ({"text": {"content": "x"}}, 40063),  # neither external_userid nor sender
        ({"external_userid": ["wmA"] * 10_001, "text": {"content": "x"}}, 40035),
        ({"chat_type": "group", "text": {"content": "x"}}, 40063),  # group needs sender
        ({"chat_type": "moments", "sender": "xiaolin", "text": {"content": "x"}}, 40035),
        ({"sender": "ghost", "text": {"content": "x"}}, 40003),
        ({"external_userid": ["wmA"], "attachments": [{"msgtype": "voice", "voice": {}}]}, 41065),
        ({"external_userid": ["wmA"], "attachments": [_image("3bogus")]}, 40007),
    ],
)
async def test_add_msg_template_validation(call, customers, body, errcode):
    assert (await call("add_msg_template", body))["errcode"] == errcode


async def test_attachments_limit_and_delivery(call, customers, emu_state, emu_client):
    media_id = emu_state.add_media("image")
    too_many = await call(
        "add_msg_template", {"external_userid": ["wmA"], "attachments": [_image(media_id)] * 10}
    )
    assert too_many["errcode"] == 41064
    made = await call("add_msg_template", {"external_userid": ["wmA"], "attachments": [_image(media_id)] * 9})
    assert made["errcode"] == 0
    await confirm(emu_client, made["msgid"], "xiaolin")
    (received,) = emu_state.world.group_messages
    assert received["text"] is None and received["attachments"] == [_image(media_id)] * 9


async def test_group_chat_task(call, emu_state, emu_client):
    groups = emu_state.world.groups
    groups["wrOWN1"] = {"owner": "xiaolin", "members": ["xiaolin"], "member_version": "v"}
    groups["wrOWN2"] = {"owner": "xiaolin", "members": ["xiaolin"], "member_version": "v"}
    groups["wrOTHER"] = {"owner": "zhangmei", "members": ["zhangmei"], "member_version": "v"}
    body = {"chat_type": "group", "sender": "xiaolin", "text": {"content": "群公告"}}
    made = await call("add_msg_template", {**body, "chat_id_list": ["wrOWN1", "wrOWN2", "wrOTHER"]})
    assert made["fail_list"] == ["wrOTHER"]
    del groups["wrOWN2"]  # dismissed before the owner confirms
    _, result = await confirm(emu_client, made["msgid"], "xiaolin")
    assert [(s["chat_id"], s["status"]) for s in result["send_list"]] == [("wrOWN1", 1), ("wrOWN2", 2)]
    assert [m["chat_id"] for m in emu_state.world.group_messages] == ["wrOWN1"]
    assert (await call("add_msg_template", {**body, "sender": "wangqiang"}))["errcode"] == 41048


async def test_allow_select_lets_the_member_pick_recipients(call, customers, emu_client):
    fixed = await send_single(call, ["wmA", "wmB"])
    status, _ = await confirm(emu_client, fixed["msgid"], "xiaolin", recipients=["wmA"])
    assert status == 400
    chosen = await send_single(call, ["wmA", "wmB"], allow_select=True)
    await confirm(emu_client, chosen["msgid"], "xiaolin", recipients=["wmB"])
    assert await statuses(call, chosen["msgid"], "xiaolin") == {"wmA": 0, "wmB": 1}


async def test_tag_filter(call, emu_state):
    befriend(emu_state, "xiaolin", "wmA", tags=["etMILK", "etSTORE"])
    befriend(emu_state, "xiaolin", "wmB", tags=["etMILK"])
    befriend(emu_state, "xiaolin", "wmC", tags=["etDIAPER", "etSTORE"])
    tag_filter = {"group_list": [{"tag_list": ["etMILK", "etDIAPER"]}, {"tag_list": ["etSTORE"]}]}
    made = await send_single(call, [], sender="xiaolin", tag_filter=tag_filter)
    assert await statuses(call, made["msgid"], "xiaolin") == {"wmA": 0, "wmC": 0}


async def test_dispatch_delay_option_gives_41063(call, customers, emu_state, clock):
    emu_state.options.groupmsg_dispatch_seconds = 10
    msgid = (await send_single(call, ["wmA"]))["msgid"]
    assert (await call("get_groupmsg_task", {"msgid": msgid}))["errcode"] == 41063
    assert (await call("get_groupmsg_send_result", {"msgid": msgid, "userid": "xiaolin"}))["errcode"] == 41063
    clock.advance(10)
    assert (await call("get_groupmsg_task", {"msgid": msgid}))["errcode"] == 0


async def test_send_result_cursor_paging(call, emu_state):
    ids = [f"wm{i:030d}" for i in range(5)]
    for ext in ids:
        befriend(emu_state, "xiaolin", ext)
    msgid = (await send_single(call, ids))["msgid"]
    seen, cursor = [], ""
    for _ in range(3):
        page = await call(
            "get_groupmsg_send_result", {"msgid": msgid, "userid": "xiaolin", "limit": 2, "cursor": cursor}
        )
        seen += [s["external_userid"] for s in page["send_list"]]
        cursor = page["next_cursor"]
    assert seen == ids and cursor == ""
    bad = {"msgid": msgid, "userid": "xiaolin", "limit": 1001}
    assert (await call("get_groupmsg_send_result", bad))["errcode"] == 40035


async def test_groupmsg_list_v2(call, customers, clock):
    start = int(clock.timestamp())
    first = (await send_single(call, ["wmA"]))["msgid"]
    clock.advance(hours=1)
    second = (await send_single(call, ["wmB"]))["msgid"]
    span = {"chat_type": "single", "start_time": start, "end_time": start + 7200}
    listed = await call("get_groupmsg_list_v2", span)
    assert [(m["msgid"], m["create_type"], "creator" in m) for m in listed["group_msg_list"]] == [
        (first, 0, False),
        (second, 0, False),
    ]
    paged = await call("get_groupmsg_list_v2", {**span, "limit": 1})
    assert [m["msgid"] for m in paged["group_msg_list"]] == [first] and paged["next_cursor"]
    personal = await call("get_groupmsg_list_v2", {**span, "filter_type": 1})
    assert personal["group_msg_list"] == []
    assert (await call("get_groupmsg_list_v2", {**span, "chat_type": "group"}))["group_msg_list"] == []
    too_long = {**span, "end_time": start + 32 * 86400}
    assert (await call("get_groupmsg_list_v2", too_long))["errcode"] == 40035
    assert (await call("get_groupmsg_list_v2", {"chat_type": "single", "start_time": start}))[
        "errcode"
    ] == 40063
