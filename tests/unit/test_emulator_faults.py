"""Emulator: scripted faults, journal (masking), rate limits, wrong method / bad JSON."""

from __future__ import annotations

import aiohttp
import pytest

SYNC = "/cgi-bin/kf/sync_msg"
OPEN_KFID = "wkDEMOxiaohe0000000000000000001"


async def test_errcode_fault_counts_down_and_is_journaled(emu_call, emu_client, emu_state):
    resp = await emu_client.post("/emulator/faults", json={"path": SYNC, "errcode": 45033, "count": 2})
    assert resp.status == 200
    pending = await (await emu_client.get("/emulator/faults")).json()
    assert pending == [
        {
            "path": SYNC,
            "errcode": 45033,
            "timeout": False,
            "delay_seconds": 0.0,
            "http_status": None,
            "count": 2,
        }
    ]
    codes = [
        (await emu_call("kf", "POST", "kf/sync_msg", json={"open_kfid": OPEN_KFID}))["errcode"]
        for _ in range(3)
    ]
    assert codes == [45033, 45033, 0]
    assert [e["errcode"] for e in emu_state.calls("kf/sync_msg")] == [45033, 45033, 0]
    assert await (await emu_client.get("/emulator/faults")).json() == []


async def test_token_fault_behaves_like_real_expiry(emu_call, emu_state):
    await emu_call("kf", "POST", "kf/account/list", json={})
    token = emu_state.current_token("kf")
    emu_state.add_fault("kf/sync_msg", errcode=42001)
    first = await emu_call("kf", "POST", "kf/sync_msg", json={"open_kfid": OPEN_KFID}, token=token)
    assert first["errcode"] == 42001
    # The same token stays dead for every API; a new gettoken issues a fresh one.
    again = await emu_call("kf", "POST", "kf/account/list", json={}, token=token)
    assert again["errcode"] == 42001
    assert emu_state.current_token("kf") is None
    replayed = await emu_call("kf", "POST", "kf/account/list", json={})
    assert replayed["errcode"] == 0 and emu_state.current_token("kf") != token


async def test_http_status_fault(emu_client, emu_call, emu_state):
    await emu_call("kf", "POST", "kf/account/list", json={})  # fetch the token first
    emu_state.add_fault("/cgi-bin/kf/account/list", http_status=502)
    token = emu_state.current_token("kf")
    resp = await emu_client.post("/cgi-bin/kf/account/list", params={"access_token": token}, json={})
    assert resp.status == 502
    resp = await emu_client.post("/cgi-bin/kf/account/list", params={"access_token": token}, json={})
    assert resp.status == 200 and (await resp.json())["errcode"] == 0


async def test_timeout_fault_holds_until_client_times_out(emu_client, emu_call, emu_state):
    await emu_call("kf", "POST", "kf/account/list", json={})
    emu_state.add_fault("kf/account/list", timeout=True, delay_seconds=0.5, errcode=-1)
    token = emu_state.current_token("kf")
    with pytest.raises(TimeoutError):
        await emu_client.post(
            "/cgi-bin/kf/account/list",
            params={"access_token": token},
            json={},
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    assert emu_state.faults.pending == []


async def test_bad_fault_request_is_400(emu_client):
    resp = await emu_client.post("/emulator/faults", json={"path": SYNC})
    assert resp.status == 400


async def test_journal_masks_credentials_and_clears(emu_client, emu_call, emu_settings):
    await emu_call("contact", "GET", "externalcontact/list", params={"userid": "xiaolin"})
    journal = await (await emu_client.get("/emulator/journal")).json()
    assert [e["path"] for e in journal] == ["/cgi-bin/gettoken", "/cgi-bin/externalcontact/list"]
    assert journal[0]["query"] == {"corpid": emu_settings.wecom.corp_id, "corpsecret": "***"}
    assert journal[1]["query"] == {"access_token": "***", "userid": "xiaolin"}
    assert journal[1]["errcode"] == 0 and journal[1]["method"] == "GET" and journal[1]["seq"] == 2
    secret = emu_settings.app("contact").secret.get_secret_value()
    assert secret not in str(journal)
    assert (await emu_client.delete("/emulator/journal")).status == 200
    assert await (await emu_client.get("/emulator/journal")).json() == []


async def test_journal_records_json_body(emu_call, emu_state):
    await emu_call("kf", "POST", "kf/sync_msg", json={"open_kfid": OPEN_KFID, "limit": 10})
    (entry,) = emu_state.calls("kf/sync_msg")
    assert entry["body"] == {"open_kfid": OPEN_KFID, "limit": 10}
    assert entry["at"] == emu_state.clock.timestamp()


async def test_rate_limit_blocks_for_60_seconds(emu_call, emu_state, clock):
    emu_state.set_rate_limit("kf/account/list", 3)
    codes = [(await emu_call("kf", "POST", "kf/account/list", json={}))["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45009]
    clock.advance(59)
    assert (await emu_call("kf", "POST", "kf/account/list", json={}))["errcode"] == 45009
    clock.advance(2)
    assert (await emu_call("kf", "POST", "kf/account/list", json={}))["errcode"] == 0


async def test_wrong_method_and_bad_json(emu_client, emu_call, emu_state):
    body = await emu_call("kf", "GET", "kf/sync_msg")
    assert body["errcode"] == 40035
    token = emu_state.current_token("kf")
    resp = await emu_client.post("/cgi-bin/kf/sync_msg", params={"access_token": token}, data=b"{nope")
    assert (await resp.json())["errcode"] == 40035


async def test_unknown_path_is_404(emu_client):
    resp = await emu_client.get("/cgi-bin/no/such/api")
    assert resp.status == 404
