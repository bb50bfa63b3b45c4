"""Emulator: gettoken errcodes, stable tokens, expiry on the clock, revoke/rotate hooks, token checks."""

from __future__ import annotations

import pytest


async def _gettoken(client, **params):
    resp = await client.get("/cgi-bin/gettoken", params=params)
    assert resp.status == 200
    return await resp.json()


def _creds(settings, app="contact"):
    return {"corpid": settings.wecom.corp_id, "corpsecret": settings.app(app).secret.get_secret_value()}


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"corpsecret": "x"}, 41002),
        ({"corpid": "ww5179d3m0c0rp0001"}, 41004),
        ({"corpid": "wwWRONG", "corpsecret": "x"}, 40013),
        ({"corpid": "ww5179d3m0c0rp0001", "corpsecret": "wrong"}, 40001),
    ],
)
async def test_gettoken_errors(emu_client, params, errcode):
    body = await _gettoken(emu_client, **params)
    assert body["errcode"] == errcode
    assert "access_token" not in body


async def test_same_token_with_decreasing_expires_in_until_expiry(emu_client, emu_settings, clock):
    first = await _gettoken(emu_client, **_creds(emu_settings))
    assert first["errcode"] == 0 and first["errmsg"] == "ok" and first["expires_in"] == 7200
    clock.advance(100)
    second = await _gettoken(emu_client, **_creds(emu_settings))
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 7100
    clock.advance(7100)
    third = await _gettoken(emu_client, **_creds(emu_settings))
    assert third["access_token"] != first["access_token"]
    assert third["expires_in"] == 7200


async def test_tokens_are_per_app(emu_client, emu_settings):
    contact = await _gettoken(emu_client, **_creds(emu_settings, "contact"))
    kf = await _gettoken(emu_client, **_creds(emu_settings, "kf"))
    assert contact["access_token"] != kf["access_token"]


async def test_token_checks_missing_unknown_expired(emu_client, emu_settings, clock, emu_call):
    resp = await emu_client.get("/cgi-bin/externalcontact/get_follow_user_list")
    assert (await resp.json())["errcode"] == 41001
    body = await emu_call("contact", "GET", "externalcontact/get_follow_user_list", token="garbage")
    assert body["errcode"] == 40014
    token = (await _gettoken(emu_client, **_creds(emu_settings)))["access_token"]
    ok = await emu_call("contact", "GET", "externalcontact/get_follow_user_list", token=token)
    assert ok["follow_user"] == ["xiaolin", "zhangmei", "wangqiang"]
    clock.advance(7200)
    body = await emu_call("contact", "GET", "externalcontact/get_follow_user_list", token=token)
    assert body["errcode"] == 42001


async def test_other_apps_token_is_refused(emu_call, emu_client, emu_settings):
    kf_token = (await _gettoken(emu_client, **_creds(emu_settings, "kf")))["access_token"]
    body = await emu_call("contact", "GET", "externalcontact/get_follow_user_list", token=kf_token)
    assert body["errcode"] == 40014


async def test_revoke_hook_kills_live_token(emu_client, emu_settings, emu_state, emu_call):
    token = (await _gettoken(emu_client, **_creds(emu_settings)))["access_token"]
    assert emu_state.revoke_token("contact", errcode=42001) == token
    body = await emu_call("contact", "GET", "externalcontact/get_follow_user_list", token=token)
    assert body["errcode"] == 42001
    fresh = await _gettoken(emu_client, **_creds(emu_settings))
    assert fresh["access_token"] != token


async def test_rotate_hook_issues_new_token_old_still_valid(emu_client, emu_settings, emu_state, emu_call):
    old = (await _gettoken(emu_client, **_creds(emu_settings)))["access_token"]
    emu_state.rotate_token("contact")
    new = (await _gettoken(emu_client, **_creds(emu_settings)))["access_token"]
    assert new != old
    body = await emu_call("contact", "GET", "externalcontact/get_follow_user_list", token=old)
    assert body["errcode"] == 0


async def test_failed_gettoken_calls_block(emu_client, emu_settings, emu_state):
    emu_state.options.gettoken_failure_limit_per_hour = 2
    for _ in range(2):
        assert (await _gettoken(emu_client, corpid=emu_settings.wecom.corp_id, corpsecret="bad"))[
            "errcode"
        ] == 40001
    blocked = await _gettoken(emu_client, **_creds(emu_settings))
    assert blocked["errcode"] == 45009
