"""Emulator: customer groups (§6.1) — groupchat/list and groupchat/get follow the simulated client actions."""

from __future__ import annotations

from typing import Any

import pytest

API = "externalcontact/groupchat/"


@pytest.fixture
def call(emu_call):
    """`await call("get", {...})` with the contact app's token."""

    async def post(api: str, body: dict[str, Any]) -> dict[str, Any]:
        return await emu_call("contact", "POST", API + api, json=body)

    return post


async def test_get_follows_join_and_leave(call, emu_state, emu_receiver) -> None:
    chat_id = (await emu_state.simulate_group_event("create", owner="xiaolin", name="小禾妈妈群"))["chat_id"]
    await emu_state.simulate_group_join(chat_id, "wmA", join_scene=3)
    await emu_state.simulate_group_join(chat_id, "wmB", join_scene=0)
    group = (await call("get", {"chat_id": chat_id}))["group_chat"]
    assert [(m["userid"], m["type"], m["join_scene"]) for m in group["member_list"]] == [
        ("xiaolin", 1, 1),
        ("wmA", 2, 3),  # callback JoinScene 3 (QR) stays 3
        ("wmB", 2, 1),  # callback JoinScene 0 (invited) is join_scene 1 here
    ]
    assert group["member_list"][2]["invitor"] == {"userid": "xiaolin"}
    assert "name" not in group["member_list"][1]
    version = group["member_version"]

    await emu_state.simulate_group_leave(chat_id, "wmA", quit_scene=1)
    group = (await call("get", {"chat_id": chat_id, "need_name": 1}))["group_chat"]
    assert [(m["userid"], m["name"]) for m in group["member_list"]] == [
        ("xiaolin", "小林"),
        ("wmB", "微信用户"),
    ]
    assert group["member_version"] != version
    kinds = [r["plain"] for r in emu_receiver.received]
    assert "<UpdateDetail><![CDATA[del_member]]></UpdateDetail>" in kinds[-1]
    assert "<QuitScene>1</QuitScene>" in kinds[-1]


async def test_get_errors(call, emu_state) -> None:
    assert (await call("get", {}))["errcode"] == 40063
    assert (await call("get", {"chat_id": "wrNOPE"}))["errcode"] == 40050
    chat_id = (await emu_state.simulate_group_event("create", owner="xiaolin"))["chat_id"]
    await emu_state.simulate_group_event("dismiss", chat_id=chat_id)
    assert (await call("get", {"chat_id": chat_id}))["errcode"] == 40050


async def test_leave_of_a_non_member_is_refused(emu_state) -> None:
    chat_id = (await emu_state.simulate_group_event("create", owner="xiaolin"))["chat_id"]
    with pytest.raises(ValueError, match="not in chat"):
        await emu_state.simulate_group_leave(chat_id, "wmA")


async def test_list_pages_by_owner(call, emu_state) -> None:
    made = [(await emu_state.simulate_group_event("create", owner="xiaolin"))["chat_id"] for _ in range(3)]
    other = (await emu_state.simulate_group_event("create", owner="zhangmei"))["chat_id"]
    assert (await call("list", {}))["errcode"] == 40035  # limit is required
    first = await call("list", {"limit": 2, "owner_filter": {"userid_list": ["xiaolin"]}})
    second = await call(
        "list", {"limit": 2, "owner_filter": {"userid_list": ["xiaolin"]}, "cursor": first["next_cursor"]}
    )
    listed = [g["chat_id"] for g in first["group_chat_list"] + second["group_chat_list"]]
    assert listed == made and second["next_cursor"] == ""
    everyone = await call("list", {"limit": 1000})
    assert [g["chat_id"] for g in everyone["group_chat_list"]] == [*made, other]
