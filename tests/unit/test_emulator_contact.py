"""Emulator: customers, corp tags (§5.2), contact ways (§5.3), welcome codes (§5.4)."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
async def customer(emu_state, emu_receiver):
    """xiaolin's new customer from channel store_12 (callback delivered to the receiver)."""
    return await emu_state.simulate_add_contact(userid="xiaolin", state="store_12", name="王妈妈")


async def test_added_customer_is_visible_through_the_apis(emu_call, customer, clock):
    ext = customer["external_userid"]
    assert re.fullmatch(r"wm[0-9A-Za-z]{30}", ext)
    body = await emu_call("contact", "GET", "externalcontact/get", params={"external_userid": ext})
    assert body["errcode"] == 0
    assert body["external_contact"]["name"] == "王妈妈"
    (follow,) = body["follow_user"]
    assert follow["userid"] == "xiaolin" and follow["state"] == "store_12" and follow["add_way"] == 1
    assert follow["createtime"] == int(clock.timestamp()) and follow["tags"] == []
    listed = await emu_call("contact", "GET", "externalcontact/list", params={"userid": "xiaolin"})
    assert listed["external_userid"] == [ext]
    batch = await emu_call(
        "contact", "POST", "externalcontact/batch/get_by_user", json={"userid_list": ["xiaolin"]}
    )
    assert batch["external_contact_list"][0]["follow_info"]["state"] == "store_12"


@pytest.mark.parametrize(
    ("params", "errcode"),
    [({}, 41035), ({"external_userid": "wmNOPE"}, 40096)],
)
async def test_get_errors(emu_call, params, errcode):
    assert (await emu_call("contact", "GET", "externalcontact/get", params=params))["errcode"] == errcode


async def test_remark_limits_and_relation(emu_call, customer, emu_state):
    ext = customer["external_userid"]
    too_long = await emu_call(
        "contact",
        "POST",
        "externalcontact/remark",
        json={"userid": "xiaolin", "external_userid": ext, "remark": "x" * 21},
    )
    assert too_long["errcode"] == 40035
    stranger = await emu_call(
        "contact",
        "POST",
        "externalcontact/remark",
        json={"userid": "zhangmei", "external_userid": ext, "remark": "x"},
    )
    assert stranger["errcode"] == 84061
    ok = await emu_call(
        "contact",
        "POST",
        "externalcontact/remark",
        json={"userid": "xiaolin", "external_userid": ext, "remark": "王妈妈-门店12"},
    )
    assert ok == {"errcode": 0, "errmsg": "ok"}
    assert emu_state.world.follows[("xiaolin", ext)].remark == "王妈妈-门店12"
    assert len(emu_state.callbacks) == 1  # API edits emit no callback (p/96361)


# -- corp tags -------------------------------------------------------------------------------------


async def test_add_corp_tag_rules(emu_call, emu_state):
    created = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_corp_tag",
        json={"group_name": "活动", "tag": [{"name": "双11"}, {"name": "618"}]},
    )
    assert created["errcode"] == 0
    group = created["tag_group"]
    assert group["group_name"] == "活动" and [t["name"] for t in group["tag"]] == ["双11", "618"]
    dup = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_corp_tag",
        json={"group_id": group["group_id"], "tag": [{"name": "双11"}]},
    )
    assert dup["errcode"] == 40071
    unknown = await emu_call(
        "contact", "POST", "externalcontact/add_corp_tag", json={"group_id": "etNOPE", "tag": [{"name": "x"}]}
    )
    assert unknown["errcode"] == 40068
    long_name = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_corp_tag",
        json={"group_name": "活动", "tag": [{"name": "长" * 31}]},
    )
    assert long_name["errcode"] == 40035
    assert emu_state.callbacks == []


async def test_corp_tag_cap(emu_call, emu_state):
    live = emu_state.world.live_tag_count()
    names = [{"name": f"t{i}"} for i in range(3000 - live)]
    full = await emu_call(
        "contact", "POST", "externalcontact/add_corp_tag", json={"group_name": "满", "tag": names}
    )
    assert full["errcode"] == 0
    over = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_corp_tag",
        json={"group_name": "满", "tag": [{"name": "one-more"}]},
    )
    assert over["errcode"] == 40126


async def test_get_corp_tag_list_filters(emu_call, emu_state):
    all_groups = (await emu_call("contact", "POST", "externalcontact/get_corp_tag_list", json={}))[
        "tag_group"
    ]
    assert {g["group_name"] for g in all_groups} == {"宝宝月龄", "客户来源", "兴趣"}
    assert "deleted" not in all_groups[0]
    group = all_groups[0]
    other_tag = all_groups[1]["tag"][0]["id"]
    body = await emu_call(
        "contact",
        "POST",
        "externalcontact/get_corp_tag_list",
        json={"group_id": [group["group_id"]], "tag_id": [other_tag]},
    )
    assert [g["group_id"] for g in body["tag_group"]] == [group["group_id"]]  # group_id wins
    assert body["tag_group"][0]["deleted"] is False
    by_tag = await emu_call(
        "contact", "POST", "externalcontact/get_corp_tag_list", json={"tag_id": [other_tag]}
    )
    assert [t["id"] for t in by_tag["tag_group"][0]["tag"]] == [other_tag]


async def test_edit_and_delete_corp_tags(emu_call):
    groups = (await emu_call("contact", "POST", "externalcontact/get_corp_tag_list", json={}))["tag_group"]
    tags = groups[0]["tag"]
    dup = await emu_call(
        "contact",
        "POST",
        "externalcontact/edit_corp_tag",
        json={"id": tags[0]["id"], "name": tags[1]["name"]},
    )
    assert dup["errcode"] == 40071
    assert (
        await emu_call("contact", "POST", "externalcontact/edit_corp_tag", json={"id": "etNOPE", "name": "x"})
    )["errcode"] == 40068
    assert (await emu_call("contact", "POST", "externalcontact/del_corp_tag", json={}))["errcode"] == 40063
    assert (await emu_call("contact", "POST", "externalcontact/del_corp_tag", json={"tag_id": ["etNOPE"]}))[
        "errcode"
    ] == 40068
    assert (
        await emu_call("contact", "POST", "externalcontact/del_corp_tag", json={"tag_id": [tags[0]["id"]]})
    )["errcode"] == 0
    body = await emu_call(
        "contact", "POST", "externalcontact/get_corp_tag_list", json={"tag_id": [tags[0]["id"]]}
    )
    assert body["tag_group"][0]["tag"][0]["deleted"] is True


async def test_mark_tag_rules(emu_call, customer, emu_state):
    ext = customer["external_userid"]
    tag_id = emu_state.world.tag_groups["etDEMOgroup000000000000000000001"].tags[0].id
    both_empty = await emu_call(
        "contact", "POST", "externalcontact/mark_tag", json={"userid": "xiaolin", "external_userid": ext}
    )
    assert both_empty["errcode"] == 40063
    not_customer = await emu_call(
        "contact",
        "POST",
        "externalcontact/mark_tag",
        json={"userid": "zhangmei", "external_userid": ext, "add_tag": [tag_id]},
    )
    assert not_customer["errcode"] == 84061
    bad_tag = await emu_call(
        "contact",
        "POST",
        "externalcontact/mark_tag",
        json={"userid": "xiaolin", "external_userid": ext, "add_tag": ["etNOPE"]},
    )
    assert bad_tag["errcode"] == 40068
    ok = await emu_call(
        "contact",
        "POST",
        "externalcontact/mark_tag",
        json={"userid": "xiaolin", "external_userid": ext, "add_tag": [tag_id]},
    )
    assert ok["errcode"] == 0
    got = await emu_call("contact", "GET", "externalcontact/get", params={"external_userid": ext})
    assert got["follow_user"][0]["tags"] == [
        {"group_name": "宝宝月龄", "tag_name": "孕期", "type": 1, "tag_id": tag_id}
    ]
    assert len(emu_state.callbacks) == 1  # only the simulated add


# -- contact ways ----------------------------------------------------------------------------------


async def test_contact_way_lifecycle(emu_call):
    made = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_contact_way",
        json={"type": 1, "scene": 2, "state": "store_12", "user": ["xiaolin"]},
    )
    assert made["errcode"] == 0
    assert re.fullmatch(r"[0-9a-f]{32}", made["config_id"]) and made["qr_code"].startswith("https://")
    scene1 = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_contact_way",
        json={"type": 2, "scene": 1, "user": ["xiaolin", "zhangmei"]},
    )
    assert "qr_code" not in scene1
    await emu_call(
        "contact",
        "POST",
        "externalcontact/update_contact_way",
        json={"config_id": scene1["config_id"], "user": ["wangqiang"], "type": 1},
    )
    got = await emu_call(
        "contact", "POST", "externalcontact/get_contact_way", json={"config_id": scene1["config_id"]}
    )
    assert got["contact_way"]["user"] == ["wangqiang"] and got["contact_way"]["type"] == 2  # lists replace
    listed = await emu_call("contact", "POST", "externalcontact/list_contact_way", json={"limit": 1})
    assert len(listed["contact_way"]) == 1 and listed["next_cursor"]
    rest = await emu_call(
        "contact",
        "POST",
        "externalcontact/list_contact_way",
        json={"limit": 1, "cursor": listed["next_cursor"]},
    )
    assert "next_cursor" not in rest
    assert (
        await emu_call(
            "contact", "POST", "externalcontact/del_contact_way", json={"config_id": made["config_id"]}
        )
    )["errcode"] == 0
    assert (
        await emu_call(
            "contact", "POST", "externalcontact/get_contact_way", json={"config_id": made["config_id"]}
        )
    )["errcode"] == 41044


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"scene": 2, "user": ["xiaolin"]}, 41037),
        ({"type": 1, "user": ["xiaolin"]}, 41038),
        ({"type": 3, "scene": 2, "user": ["xiaolin"]}, 41039),
        ({"type": 1, "scene": 3, "user": ["xiaolin"]}, 41040),
        ({"type": 1, "scene": 2, "user": ["xiaolin", "zhangmei"]}, 40035),
        ({"type": 1, "scene": 2, "user": ["xiaolin"], "state": "s" * 31}, 40035),
        ({"type": 1, "scene": 2, "user": ["xiaolin"], "remark": "r" * 31}, 40035),
        ({"type": 2, "scene": 2, "user": ["xiaolin"], "party": list(range(100))}, 41041),
    ],
)
async def test_contact_way_validation(emu_call, body, errcode):
    assert (await emu_call("contact", "POST", "externalcontact/add_contact_way", json=body))[
        "errcode"
    ] == errcode


async def test_contact_way_quota(emu_call, emu_state):
    emu_state.options.contact_way_quota = 1
    body = {"type": 1, "scene": 2, "user": ["xiaolin"]}
    assert (await emu_call("contact", "POST", "externalcontact/add_contact_way", json=body))["errcode"] == 0
    assert (await emu_call("contact", "POST", "externalcontact/add_contact_way", json=body))[
        "errcode"
    ] == 41045


async def test_list_contact_way_window_and_temp_ways(emu_call, emu_state, clock):
    async def add(**extra):
        body = {"type": 1, "scene": 2, "user": ["xiaolin"], **extra}
        return (await emu_call("contact", "POST", "externalcontact/add_contact_way", json=body))["config_id"]

    async def listed(**body):
        return await emu_call("contact", "POST", "externalcontact/list_contact_way", json=body)

    old = await add()
    clock.advance(days=91)
    recent = await add()
    await add(is_temp=True)  # temporary-session ways are never listed
    now = int(clock.timestamp())
    assert [w["config_id"] for w in (await listed())["contact_way"]] == [recent]  # default: 90 days
    assert [w["config_id"] for w in (await listed(start_time=now - 92 * 86400))["contact_way"]] == [
        old,
        recent,
    ]
    assert (await listed(start_time=now, end_time=now - 1))["errcode"] == 40035
    assert (await listed(limit=1001))["errcode"] == 40035
    emu_state.options.list_contact_way_max_span_days = 90  # the span cap is UNCONFIRMED: a knob
    assert (await listed(start_time=now - 92 * 86400))["errcode"] == 40035
    assert (await listed(start_time=now - 90 * 86400))["errcode"] == 0


async def test_contact_way_state_flows_into_add_event(emu_call, emu_state, emu_receiver):
    made = await emu_call(
        "contact",
        "POST",
        "externalcontact/add_contact_way",
        json={"type": 1, "scene": 2, "state": "live_0618", "user": ["zhangmei"]},
    )
    added = await emu_state.simulate_add_contact(config_id=made["config_id"])
    assert added["userid"] == "zhangmei" and added["state"] == "live_0618"
    assert "<State><![CDATA[live_0618]]></State>" in emu_receiver.received[0]["plain"]


# -- welcome codes ---------------------------------------------------------------------------------


async def test_welcome_code_single_use(emu_call, customer, emu_state):
    body = {"welcome_code": customer["welcome_code"], "text": {"content": "欢迎来到小禾母婴!"}}
    assert (await emu_call("contact", "POST", "externalcontact/send_welcome_msg", json=body))["errcode"] == 0
    assert (await emu_call("contact", "POST", "externalcontact/send_welcome_msg", json=body))[
        "errcode"
    ] == 41051
    (sent,) = emu_state.world.welcome_messages
    assert sent["text"] == "欢迎来到小禾母婴!" and sent["external_userid"] == customer["external_userid"]


async def test_welcome_code_expires_after_20_seconds(emu_call, customer, clock):
    body = {"welcome_code": customer["welcome_code"], "text": {"content": "hi"}}
    clock.advance(20.5)
    assert (await emu_call("contact", "POST", "externalcontact/send_welcome_msg", json=body))[
        "errcode"
    ] == 41050


async def test_welcome_code_in_flight_gives_41096(emu_call, customer, emu_state):
    body = {"welcome_code": customer["welcome_code"], "text": {"content": "hi"}}
    emu_state.hold_welcome_code(customer["welcome_code"])
    assert (await emu_call("contact", "POST", "externalcontact/send_welcome_msg", json=body))[
        "errcode"
    ] == 41096
    emu_state.release_welcome_code(customer["welcome_code"], delivered=False)
    assert (await emu_call("contact", "POST", "externalcontact/send_welcome_msg", json=body))["errcode"] == 0


async def test_welcome_content_rules(emu_call, customer, emu_state, clock):
    code = customer["welcome_code"]

    async def send(**extra):
        return (
            await emu_call(
                "contact", "POST", "externalcontact/send_welcome_msg", json={"welcome_code": code, **extra}
            )
        )["errcode"]

    assert await send() == 40063
    assert (await emu_call("contact", "POST", "externalcontact/send_welcome_msg", json={}))[
        "errcode"
    ] == 41049
    assert await send(text={"content": "宝" * 1334}) == 45002  # 4002 bytes
    link = {"msgtype": "link", "link": {"title": "t", "url": "https://example.com"}}
    assert await send(attachments=[link] * 10) == 41064
    assert await send(attachments=[{"msgtype": "voice", "voice": {}}]) == 41065
    assert await send(attachments=[{"msgtype": "image", "image": {"media_id": "nope"}}]) == 40007
    media_id = emu_state.add_media("image")
    assert await send(attachments=[{"msgtype": "image", "image": {"media_id": media_id}}]) == 0


async def test_console_welcome_suppresses_code(emu_state, emu_receiver):
    emu_state.options.console_welcome_for.add("wangqiang")
    added = await emu_state.simulate_add_contact(userid="wangqiang")
    assert added["welcome_code"] is None
    assert "WelcomeCode" not in emu_receiver.received[0]["plain"]
