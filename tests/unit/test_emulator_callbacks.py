"""Emulator: real signed+encrypted callbacks, retries on timeout, robot JSON, simulate endpoints."""

from __future__ import annotations

import json

import pytest

from bot import errors
from bot.wecom.crypto import parse_xml, parse_xml_tree


async def test_add_contact_delivers_signed_encrypted_xml(emu_state, emu_receiver, emu_settings, clock):
    result = await emu_state.simulate_add_contact(userid="xiaolin", state="store_12")
    assert result["delivery"]["attempts"] == [200] and result["delivery"]["delivered"] is True
    (got,) = emu_receiver.received
    assert got["envelope"]["ToUserName"] == emu_settings.wecom.corp_id
    assert got["envelope"]["AgentID"] == "1000002"
    assert got["query"]["timestamp"] == str(int(clock.timestamp()))
    fields = parse_xml(got["plain"])
    assert fields == {
        "ToUserName": emu_settings.wecom.corp_id,
        "FromUserName": "sys",
        "CreateTime": str(int(clock.timestamp())),
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "xiaolin",
        "ExternalUserID": result["external_userid"],
        "State": "store_12",
        "WelcomeCode": result["welcome_code"],
    }
    assert "<UserID><![CDATA[xiaolin]]></UserID>" in got["plain"]


async def test_delivery_retries_identical_payload_on_timeout(emu_state, emu_receiver):
    emu_receiver.stall_first = 2
    result = await emu_state.simulate_add_contact(userid="zhangmei")
    assert result["delivery"]["attempts"] == ["timeout", "timeout", 200]
    assert emu_receiver.hits == 3
    (record,) = emu_state.callbacks
    assert record["event"] == "change_external_contact/add_external_contact"


async def test_delivery_gives_up_after_retries(emu_state, emu_receiver):
    emu_receiver.stall_first = 10
    result = await emu_state.simulate_app_message(userid="xiaolin", text="hi")
    assert result["delivery"]["attempts"] == ["timeout"] * 4 and result["delivery"]["delivered"] is False


async def test_connection_error_is_recorded(emu_state):
    emu_state.callback_base_url = "http://127.0.0.1:9"  # discard port: nothing listens
    result = await emu_state.simulate_raw("contact", "<xml><MsgType>event</MsgType></xml>")
    assert result["delivery"]["attempts"] == ["error"] * 4


async def test_build_callback_can_be_tampered_with(emu_state, emu_receiver):
    params, body = emu_state.build_callback("kf", "<xml><Event><![CDATA[x]]></Event></xml>")
    crypto = emu_receiver.crypto("kf")
    encrypt = parse_xml(body)["Encrypt"]
    assert crypto.decrypt(params["msg_signature"], params["timestamp"], params["nonce"], encrypt).startswith(
        "<xml>"
    )
    with pytest.raises(errors.BadSignature):
        crypto.decrypt(params["msg_signature"], params["timestamp"], params["nonce"] + "1", encrypt)


async def test_same_second_pair_differs_only_in_external_userid(emu_state, emu_receiver):
    result = await emu_state.simulate_add_contact_pair(userid="xiaolin", state="live")
    first, second = (parse_xml(r["plain"]) for r in emu_receiver.received)
    assert first["CreateTime"] == second["CreateTime"]
    assert first["ExternalUserID"] != second["ExternalUserID"]
    differing = {k for k in first if first[k] != second[k]}
    assert differing == {"ExternalUserID", "WelcomeCode"}
    assert len(result["events"]) == 2


async def test_contact_lifecycle_events(emu_state, emu_receiver):
    added = await emu_state.simulate_add_contact(userid="xiaolin")
    ext = added["external_userid"]
    await emu_state.simulate_edit_contact(userid="xiaolin", external_userid=ext, remark="王妈妈")
    await emu_state.simulate_guide_deletes_customer(
        userid="xiaolin", external_userid=ext, source="DELETE_BY_TRANSFER"
    )
    await emu_state.simulate_transfer_fail(userid="zhangmei", external_userid=ext)
    again = await emu_state.simulate_add_half_contact(userid="wangqiang")
    await emu_state.simulate_customer_deletes_guide(
        userid="wangqiang", external_userid=again["external_userid"]
    )
    kinds = [parse_xml(r["plain"])["ChangeType"] for r in emu_receiver.received]
    assert kinds == [
        "add_external_contact",
        "edit_external_contact",
        "del_external_contact",
        "transfer_fail",
        "add_half_external_contact",
        "del_follow_user",
    ]
    assert parse_xml(emu_receiver.received[2]["plain"])["Source"] == "DELETE_BY_TRANSFER"
    assert parse_xml(emu_receiver.received[3]["plain"])["FailReason"] == "customer_refused"
    assert ("xiaolin", ext) not in emu_state.world.follows


async def test_group_event_member_change(emu_state, emu_receiver):
    created = await emu_state.simulate_group_event("create", owner="xiaolin")
    chat_id = created["chat_id"]
    await emu_state.simulate_group_event(
        "update", chat_id=chat_id, update_detail="add_member", members=["wmA", "wmB"], join_scene=3
    )
    root = parse_xml_tree(emu_receiver.received[1]["plain"])
    assert root.findtext("ChatId") == chat_id and root.findtext("UpdateDetail") == "add_member"
    assert root.findtext("JoinScene") == "3" and root.findtext("MemChangeCnt") == "2"
    assert [i.text for i in root.find("MemChangeList")] == ["wmA", "wmB"]
    assert root.findtext("LastMemVer") != root.findtext("CurMemVer")
    await emu_state.simulate_group_event("dismiss", chat_id=chat_id)
    assert parse_xml(emu_receiver.received[2]["plain"])["ChangeType"] == "dismiss"


async def test_tag_event_changes_console_state(emu_state, emu_receiver):
    result = await emu_state.simulate_tag_event(
        "create", tag_type="tag", name="VIP", group_id="etDEMOgroup000000000000000000001"
    )
    fields = parse_xml(emu_receiver.received[0]["plain"])
    assert fields["Event"] == "change_external_tag" and fields["Id"] == result["id"]
    assert fields["TagType"] == "tag" and fields["ChangeType"] == "create"
    assert emu_state.world.tag(result["id"]).name == "VIP"


async def test_app_message_and_robot_json(emu_state, emu_receiver):
    app_msg = await emu_state.simulate_app_message(userid="xiaolin", text="查一下王妈妈")
    fields = parse_xml(emu_receiver.received[0]["plain"])
    assert fields["MsgType"] == "text" and fields["FromUserName"] == "xiaolin"
    assert fields["MsgId"] == app_msg["msgid"] and fields["Content"] == "查一下王妈妈"
    robot = await emu_state.simulate_robot_message(userid="zhangmei", text="奶粉怎么冲", chattype="group")
    got = emu_receiver.received[1]
    assert got["app"] == "robot"
    data = json.loads(got["plain"])
    assert (
        data["msgid"] == robot["msgid"] and data["chattype"] == "group" and data["chatid"] == robot["chatid"]
    )
    assert data["from"] == {"userid": "zhangmei"} and data["text"] == {"content": "奶粉怎么冲"}


async def test_simulate_http_endpoint_and_callbacks_log(emu_client, emu_receiver):
    resp = await emu_client.post("/emulator/simulate/add_contact", json={"userid": "xiaolin", "state": "s1"})
    assert resp.status == 200
    body = await resp.json()
    assert body["external_userid"].startswith("wm") and body["delivery"]["attempts"] == [200]
    log = await (await emu_client.get("/emulator/callbacks")).json()
    assert [(c["app"], c["event"], c["attempts"]) for c in log] == [
        ("contact", "change_external_contact/add_external_contact", [200])
    ]
    assert (await emu_client.post("/emulator/simulate/nope", json={})).status == 400
    assert (await emu_client.post("/emulator/simulate/add_contact", json={"userid": "ghost"})).status == 400
    assert (await emu_client.post("/emulator/simulate/add_contact", json={"bogus": 1})).status == 400


async def test_api_mutations_emit_no_callbacks(emu_call, emu_state, emu_receiver):
    await emu_call(
        "contact", "POST", "externalcontact/add_corp_tag", json={"group_name": "g", "tag": [{"name": "t"}]}
    )
    await emu_call(
        "contact",
        "POST",
        "externalcontact/add_contact_way",
        json={"type": 1, "scene": 2, "user": ["xiaolin"]},
    )
    assert emu_state.callbacks == [] and emu_receiver.hits == 0


async def test_verify_url_handshake(emu_state, emu_receiver):
    result = await emu_state.simulate_verify_url("contact")
    assert result["ok"] is True and result["status"] == 200
