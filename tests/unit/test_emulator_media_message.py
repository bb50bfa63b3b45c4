"""Emulator: media/upload (multipart, 3-day validity, sizes) and message/send."""

from __future__ import annotations

import aiohttp
import pytest

from bot.wecom.emulator.common import ApiError


async def _upload(emu_client, emu_call, emu_state, media_type: str, content: bytes, name="a.jpg"):
    await emu_call("contact", "GET", "externalcontact/get_follow_user_list")
    form = aiohttp.FormData()
    form.add_field("media", content, filename=name, content_type="application/octet-stream")
    resp = await emu_client.post(
        "/cgi-bin/media/upload",
        data=form,
        params={"access_token": emu_state.current_token("contact"), "type": media_type},
    )
    assert resp.status == 200
    return await resp.json()


async def test_upload_then_media_expires_after_3_days(emu_client, emu_call, emu_state, clock):
    body = await _upload(emu_client, emu_call, emu_state, "image", b"\x89PNG" + b"0" * 100)
    assert body["errcode"] == 0 and body["type"] == "image"
    assert body["created_at"] == str(int(clock.timestamp()))
    (entry,) = emu_state.calls("media/upload")
    assert entry["body"] == {
        "multipart": {
            "name": "media",
            "filename": "a.jpg",
            "content_type": "application/octet-stream",
            "size": 104,
        }
    }
    emu_state.check_media(body["media_id"])  # fresh: no error
    clock.advance(days=3)
    with pytest.raises(ApiError) as caught:
        emu_state.check_media(body["media_id"])
    assert caught.value.errcode == 40007


async def test_upload_validation(emu_client, emu_call, emu_state):
    assert (await _upload(emu_client, emu_call, emu_state, "gif", b"0" * 10))["errcode"] == 40004
    assert (await _upload(emu_client, emu_call, emu_state, "file", b""))["errcode"] == 44001
    assert (await _upload(emu_client, emu_call, emu_state, "file", b"12345"))["errcode"] == 40006
    big_voice = b"0" * (2 * 1024 * 1024 + 1)
    assert (await _upload(emu_client, emu_call, emu_state, "voice", big_voice))["errcode"] == 45001


async def test_message_send(emu_call, emu_state, emu_settings):
    agentid = emu_settings.app("contact").agent_id
    body = await emu_call(
        "contact",
        "POST",
        "message/send",
        json={
            "touser": "xiaolin|ghost",
            "msgtype": "text",
            "agentid": agentid,
            "text": {"content": "王妈妈该回访了"},
        },
    )
    assert body["errcode"] == 0 and body["invaliduser"] == "ghost" and body["msgid"]
    (sent,) = emu_state.world.app_messages
    assert sent["touser"] == ["xiaolin"] and sent["text"] == {"content": "王妈妈该回访了"}


async def test_message_send_validation(emu_call, emu_settings):
    agentid = emu_settings.app("contact").agent_id

    async def send(**body):
        return (await emu_call("contact", "POST", "message/send", json=body))["errcode"]

    assert await send(touser="xiaolin", msgtype="text", text={"content": "x"}) == 41011
    assert await send(touser="xiaolin", msgtype="text", agentid=999, text={"content": "x"}) == 40056
    assert (
        await send(touser="xiaolin", msgtype="text", agentid=agentid, text={"content": "宝" * 683}) == 45002
    )
    assert await send(touser="ghost", msgtype="text", agentid=agentid, text={"content": "x"}) == 81013
