"""Emulator: 微信客服 sync_msg paging and tokens, send_msg window, state transitions, event codes."""

from __future__ import annotations

import pytest

OPEN_KFID = "wkDEMOxiaohe0000000000000000001"


async def _sync(emu_call, **body):
    return await emu_call("kf", "POST", "kf/sync_msg", json={"open_kfid": OPEN_KFID, **body})


async def _send(emu_call, touser, text="您好", **extra):
    body = {"touser": touser, "open_kfid": OPEN_KFID, "msgtype": "text", "text": {"content": text}, **extra}
    return await emu_call("kf", "POST", "kf/send_msg", json=body)


@pytest.fixture
async def kf_customer(emu_state, emu_receiver):
    """A customer who just wrote "几天发货?" to the demo kf account."""
    return await emu_state.simulate_kf_message(text="几天发货?")


async def test_account_list(emu_call):
    body = await emu_call("kf", "POST", "kf/account/list", json={})
    assert body["account_list"] == [
        {"open_kfid": OPEN_KFID, "name": "小禾母婴客服", "avatar": "", "manage_privilege": True}
    ]
    assert (await emu_call("kf", "POST", "kf/account/list", json={"limit": 101}))["errcode"] == 40035


async def test_sync_returns_customer_message_with_callback_token(emu_call, kf_customer, emu_receiver):
    assert f"<Token><![CDATA[{kf_customer['token']}]]></Token>" in emu_receiver.received[0]["plain"]
    body = await _sync(emu_call, token=kf_customer["token"])
    assert body["errcode"] == 0 and body["has_more"] == 0
    (item,) = body["msg_list"]
    assert item["origin"] == 3 and item["msgtype"] == "text" and item["text"] == {"content": "几天发货?"}
    assert item["external_userid"] == kf_customer["external_userid"] and item["msgid"] == kf_customer["msgid"]
    again = await _sync(emu_call, cursor=body["next_cursor"])
    assert again["msg_list"] == []


async def test_sync_token_valid_10_minutes(emu_call, kf_customer, clock):
    clock.advance(601)
    assert (await _sync(emu_call, token=kf_customer["token"]))["errcode"] == 95007
    assert (await _sync(emu_call, token="ENCforged"))["errcode"] == 95007


@pytest.mark.parametrize(("open_kfid", "errcode"), [(None, 95000), ("bad", 95000), ("wkUNKNOWN", 95004)])
async def test_sync_open_kfid_validation(emu_call, open_kfid, errcode):
    assert (await emu_call("kf", "POST", "kf/sync_msg", json={"open_kfid": open_kfid}))["errcode"] == errcode


async def test_sync_cursor_paging_and_limit(emu_call, emu_state, emu_receiver):
    for i in range(5):
        await emu_state.simulate_kf_message(text=f"m{i}", external_userid="wmDEMOcustomer0000000000000000001")
    first = await _sync(emu_call, limit=2)
    assert [m["text"]["content"] for m in first["msg_list"]] == ["m0", "m1"] and first["has_more"] == 1
    second = await _sync(emu_call, limit=2, cursor=first["next_cursor"])
    assert [m["text"]["content"] for m in second["msg_list"]] == ["m2", "m3"]
    third = await _sync(emu_call, limit=2, cursor=second["next_cursor"])
    assert [m["text"]["content"] for m in third["msg_list"]] == ["m4"] and third["has_more"] == 0
    assert (await _sync(emu_call, limit=1001))["errcode"] == 40035
    default = await _sync(emu_call)
    assert len(default["msg_list"]) == 5


async def test_sync_retains_three_days_and_excludes_api_sends(emu_call, emu_state, kf_customer, clock):
    await _send(emu_call, kf_customer["external_userid"])
    assert len((await _sync(emu_call))["msg_list"]) == 1  # send_msg's message is not returned
    clock.advance(days=3, seconds=1)
    assert (await _sync(emu_call))["msg_list"] == []


async def test_sync_origins_4_and_5(emu_call, emu_state, emu_receiver):
    entered = await emu_state.simulate_kf_enter_session(scene="store_qr")
    await emu_state.simulate_kf_servicer_message(external_userid=entered["external_userid"], text="我来帮您")
    items = (await _sync(emu_call))["msg_list"]
    assert [i["origin"] for i in items] == [4, 5]
    assert items[0]["event"]["event_type"] == "enter_session"
    assert items[0]["event"]["welcome_code"] == entered["welcome_code"]
    assert items[1]["servicer_userid"] == "xiaolin"


async def test_send_msg_five_per_window_reset_by_customer(emu_call, emu_state, kf_customer):
    ext = kf_customer["external_userid"]
    codes = [(await _send(emu_call, ext))["errcode"] for _ in range(6)]
    assert codes == [0, 0, 0, 0, 0, 95001]
    await emu_state.simulate_kf_message(text="还在吗", external_userid=ext)
    assert (await _send(emu_call, ext))["errcode"] == 0
    assert len(emu_state.world.kf_sent) == 6


async def test_send_msg_48h_window(emu_call, kf_customer, clock):
    clock.advance(hours=48, seconds=1)
    assert (await _send(emu_call, kf_customer["external_userid"]))["errcode"] == 95002


async def test_send_msg_limits(emu_call, kf_customer):
    ext = kf_customer["external_userid"]
    assert (await _send(emu_call, ext, text="宝" * 683))["errcode"] == 45002  # 2049 bytes
    assert (await _send(emu_call, ext, msgid="has space"))["errcode"] == 40035
    assert (await _send(emu_call, ext, msgid="x" * 33))["errcode"] == 40035


async def test_send_msg_repeated_msgid_is_not_sent_twice(emu_call, emu_state, kf_customer):
    ext = kf_customer["external_userid"]
    first = await _send(emu_call, ext, msgid="welcome-001")
    second = await _send(emu_call, ext, msgid="welcome-001")
    assert first["msgid"] == second["msgid"] == "welcome-001"
    assert len(emu_state.world.kf_sent) == 1
    emu_state.options.kf_duplicate_msgid = "error"
    assert (await _send(emu_call, ext, msgid="welcome-001"))["errcode"] == 40035


async def test_state_transitions(emu_call, kf_customer):
    ext = kf_customer["external_userid"]

    async def trans(state, servicer=None):
        body = {"open_kfid": OPEN_KFID, "external_userid": ext, "service_state": state}
        if servicer:
            body["servicer_userid"] = servicer
        return await emu_call("kf", "POST", "kf/service_state/trans", json=body)

    async def current():
        body = {"open_kfid": OPEN_KFID, "external_userid": ext}
        return await emu_call("kf", "POST", "kf/service_state/get", json=body)

    assert (await current())["service_state"] == 0
    moved = await trans(1)
    assert moved["errcode"] == 0 and "msg_code" not in moved
    assert (await trans(4))["errcode"] == 95016
    assert (await trans(3))["errcode"] == 95014
    assert (await trans(3, "wangqiang"))["errcode"] == 95014  # not a servicer of this account
    to_human = await trans(3, "zhangmei")
    assert to_human["errcode"] == 0 and to_human["msg_code"]
    assert await current() == {
        "errcode": 0,
        "errmsg": "ok",
        "service_state": 3,
        "servicer_userid": "zhangmei",
    }
    assert (await _send(emu_call, ext))["errcode"] == 95018
    ended = await trans(4)
    assert ended["msg_code"]
    assert (await trans(0))["errcode"] == 95016


async def test_end_from_unassigned_is_configurable(emu_call, emu_state, kf_customer):
    body = {"open_kfid": OPEN_KFID, "external_userid": kf_customer["external_userid"], "service_state": 4}
    assert (await emu_call("kf", "POST", "kf/service_state/trans", json=body))["errcode"] == 95016
    emu_state.options.kf_allow_end_from_unassigned = True
    assert (await emu_call("kf", "POST", "kf/service_state/trans", json=body))["errcode"] == 0


async def test_enter_session_welcome_code_20s_single_use(emu_call, emu_state, emu_receiver, clock):
    entered = await emu_state.simulate_kf_enter_session()
    body = {"code": entered["welcome_code"], "msgtype": "text", "text": {"content": "欢迎咨询小禾母婴"}}
    ok = await emu_call("kf", "POST", "kf/send_msg_on_event", json=body)
    assert ok["errcode"] == 0 and ok["msgid"]
    assert (await emu_call("kf", "POST", "kf/send_msg_on_event", json=body))["errcode"] == 40035
    late = await emu_state.simulate_kf_enter_session()
    clock.advance(21)
    body["code"] = late["welcome_code"]
    assert (await emu_call("kf", "POST", "kf/send_msg_on_event", json=body))["errcode"] == 40035


async def test_enter_session_after_recent_message_has_no_welcome_code(emu_state, kf_customer):
    entered = await emu_state.simulate_kf_enter_session(external_userid=kf_customer["external_userid"])
    assert entered["welcome_code"] is None
