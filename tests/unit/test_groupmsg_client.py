"""WeComClient's mass-send methods against the emulator: requests, paging, errcode -> typed errors."""

from __future__ import annotations

import aiohttp
import pytest

from bot import errors, retry
from bot.kv import MemoryKV
from bot.wecom import errcodes
from bot.wecom.client import WeComClient
from bot.wecom.emulator.world import Customer, Follow
from bot.wecom.tokens import TokenCache


@pytest.fixture
async def wecom(emu_client, emu_settings, clock):
    """A WeComClient whose base_url is the running emulator."""
    settings = emu_settings.with_overrides(**{"wecom.base_url": str(emu_client.make_url("")).rstrip("/")})
    kv = MemoryKV(clock)
    async with aiohttp.ClientSession() as session:
        yield WeComClient.from_settings(settings, session, TokenCache(kv, clock, margin=300), kv, clock)


@pytest.fixture
def customers(emu_state) -> list[str]:
    """Five customers of 小林."""
    ids = [f"wmCLIENT{i:024d}" for i in range(5)]
    for ext in ids:
        emu_state.world.customers[ext] = Customer(ext, name=ext)
        emu_state.world.follows[("xiaolin", ext)] = Follow(
            userid="xiaolin", external_userid=ext, createtime=0
        )
    return ids


async def test_create_confirm_and_page_through_results(wecom, customers, emu_state, clock):
    made = await wecom.add_msg_template(
        external_userid=[*customers, "wmGONE"], sender="xiaolin", text="上新啦"
    )
    assert made["fail_list"] == ["wmGONE"]
    (entry,) = emu_state.calls("externalcontact/add_msg_template")
    assert entry["body"] == {
        "chat_type": "single",
        "external_userid": [*customers, "wmGONE"],
        "sender": "xiaolin",
        "text": {"content": "上新啦"},
    }
    tasks = await wecom.get_groupmsg_task(made["msgid"])
    assert tasks["task_list"] == [{"userid": "xiaolin", "status": 0}]
    await emu_state.simulate_groupmsg_confirm(made["msgid"], "xiaolin")
    results = await wecom.all_groupmsg_send_results(made["msgid"], "xiaolin", limit=2)
    assert [(r["external_userid"], r["status"]) for r in results] == [(c, 1) for c in customers]
    assert len(emu_state.calls("get_groupmsg_send_result")) == 3  # 2 + 2 + 1
    start = int(clock.timestamp())
    listed = await wecom.get_groupmsg_list_v2("single", start - 60, start + 60, limit=10)
    assert [m["msgid"] for m in listed["group_msg_list"]] == [made["msgid"]]


async def test_remind_limit_and_cancel_raise_permanent(wecom, customers, clock):
    msgid = (await wecom.add_msg_template(external_userid=customers[:1], text="x"))["msgid"]
    for _ in range(3):
        assert (await wecom.remind_groupmsg_send(msgid))["errcode"] == 0
    with pytest.raises(errors.Permanent) as caught:
        await wecom.remind_groupmsg_send(msgid)
    assert caught.value.errcode == 41094
    clock.advance(hours=24)
    assert (await wecom.remind_groupmsg_send(msgid))["errcode"] == 0
    assert (await wecom.cancel_groupmsg_send(msgid))["errcode"] == 0
    for call in (wecom.cancel_groupmsg_send, wecom.remind_groupmsg_send):
        with pytest.raises(errors.Permanent) as caught:
            await call(msgid)
        assert caught.value.errcode == 41093


async def test_bad_requests_raise_permanent(wecom, customers):
    cases = [
        (wecom.get_groupmsg_task("msgNOPE"), 41047),
        (wecom.get_groupmsg_send_result("", "xiaolin"), 41046),
        (wecom.add_msg_template(external_userid=["wmNOBODY"], text="x"), 41048),
        (wecom.add_msg_template(external_userid=customers, attachments=[{"msgtype": "voice"}]), 41065),
    ]
    for pending, errcode in cases:
        with pytest.raises(errors.Permanent) as caught:
            await pending
        assert caught.value.errcode == errcode


async def test_still_dispatching_is_transient(wecom, customers, emu_state, clock):
    emu_state.options.groupmsg_dispatch_seconds = 5
    msgid = (await wecom.add_msg_template(external_userid=customers, text="x"))["msgid"]
    with pytest.raises(errors.Transient) as caught:
        await wecom.get_groupmsg_task(msgid)
    assert caught.value.errcode == 41063 and retry.is_retryable(caught.value)
    clock.advance(5)
    assert len((await wecom.get_groupmsg_task(msgid))["task_list"]) == 1


@pytest.mark.parametrize(
    ("errcode", "kind"),
    [
        (41046, errors.Permanent),
        (41047, errors.Permanent),
        (41048, errors.Permanent),
        (41063, errors.Transient),
        (41064, errors.Permanent),
        (41065, errors.Permanent),
        (41093, errors.Permanent),
        (41094, errors.Permanent),
    ],
)
def test_mass_send_errcodes_are_classified(errcode, kind):
    assert type(errcodes.exception_for(errcode, "", "externalcontact/remind_groupmsg_send")) is kind
