"""Tagging and the profile, end to end: kf text in, corp tags and mark_tag out, profile by API and CLI."""

from __future__ import annotations

import argparse
import asyncio
import json

from sqlalchemy import select

from bot import cli_customer
from bot.profile import load_profile, render
from bot.store.models import CorpTag, Customer, CustomerAttribute, CustomerTag

TOKEN = "api-test-token"


async def customer_of_xiaolin(stack) -> str:
    added = await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.drain()
    return added["external_userid"]


async def test_kf_words_become_tags_attributes_and_one_debounced_mark_tag(stack_factory) -> None:
    stack = await stack_factory(**{"api.token": TOKEN})
    cust = await customer_of_xiaolin(stack)
    await stack.emu.simulate_kf_message("宝宝八个月了，奶粉喝几段", external_userid=cust)
    await stack.drain()
    async with stack.runtime.sessions() as session:
        tags = {t.tag_name: t for t in await session.scalars(select(CustomerTag))}
        [attr] = list(await session.scalars(select(CustomerAttribute)))
    assert set(tags) == {"宝妈", "奶粉-2段"}
    assert (tags["宝妈"].group_name, tags["宝妈"].source) == ("人群", "mom_words")
    assert tags["宝妈"].source_key and tags["宝妈"].synced_at is None
    assert (attr.key, attr.source_rule, attr.source_text) == ("baby_birth_month", "baby_age", "宝宝八个月")
    assert stack.calls("/cgi-bin/externalcontact/mark_tag") == []  # debounced: not yet

    # A second message in the burst, then the delay passes: one mark_tag with every tag.
    stack.clock.advance(seconds=5)
    await stack.emu.simulate_kf_message("想囤点纸尿裤", external_userid=cust)
    await stack.drain()
    stack.clock.advance(seconds=stack.settings.tagging.sync_delay_seconds + 1)
    await stack.drain()
    added = stack.calls("/cgi-bin/externalcontact/add_corp_tag")
    # The rules' groups are new to the corp: each is created with its missing tags, once.
    assert [c["errcode"] for c in added] == [0, 0, 0, 0]
    assert {c["body"]["group_name"] for c in added} == {"人群", "阶段", "意向", "偏好"}
    [mark] = stack.calls("/cgi-bin/externalcontact/mark_tag")
    assert mark["errcode"] == 0 and mark["body"]["userid"] == "xiaolin"
    names = {stack.emu.world.tag(i).name for i in mark["body"]["add_tag"]}
    assert names == {"宝妈", "奶粉-2段", "囤货", "纸尿裤"}
    assert stack.calls("/cgi-bin/externalcontact/get_corp_tag_list")[0]["seq"] < added[0]["seq"] < mark["seq"]
    async with stack.runtime.sessions() as session:
        assert all(t.synced_at for t in await session.scalars(select(CustomerTag)))
        stored = {(c.group_name, c.tag_name): c.tag_id for c in await session.scalars(select(CorpTag))}
        customer = await session.scalar(select(Customer).where(Customer.external_userid == cust))
    assert set(mark["body"]["add_tag"]) <= set(stored.values())
    assert customer.lead_score == 10 + 15 + 2

    # The JSON API: 401 without the token, the profile with it.
    url = stack.service.make_url(f"/api/customers/{cust}")
    async with stack.http.get(url) as resp:
        assert resp.status == 401
    async with stack.http.get(url, headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with stack.http.get(url, headers=auth) as resp:
        assert resp.status == 200
        body = await resp.json()
    [baby] = [a for a in body["attributes"] if a["key"] == "baby_birth_month"]
    assert baby["source_rule"] == "baby_age" and baby["source_message"] == "宝宝八个月了，奶粉喝几段"
    assert baby["derived"] == {"baby_age_months": 8}
    assert body["lead_score"] == 27 and body["follows"][0]["userid"] == "xiaolin"
    async with stack.http.get(stack.service.make_url("/api/customers/wmNOBODY"), headers=auth) as resp:
        assert resp.status == 404


async def test_replayed_message_adds_no_points_and_kf_only_customer_keeps_local_tags(stack) -> None:
    sent = await stack.emu.simulate_kf_message("宝宝八个月了")
    cust = sent["external_userid"]
    await stack.drain()
    # The same kf item again (a pull that overlaps): nothing counts twice.
    await stack.runtime.drain()
    stack.clock.advance(seconds=stack.settings.tagging.sync_delay_seconds + 1)
    await stack.drain()
    async with stack.runtime.sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_userid == cust))
        tags = list(await session.scalars(select(CustomerTag)))
    assert customer.lead_score == 10
    assert tags and all(t.synced_at is None for t in tags)  # no guide: nothing to mark in WeCom
    assert stack.calls("/cgi-bin/externalcontact/mark_tag") == []


async def test_api_is_disabled_without_a_token(stack) -> None:
    async with stack.http.get(stack.service.make_url("/api/customers/wmX")) as resp:
        assert resp.status == 503 and (await resp.json())["error"] == "API disabled"


async def test_change_external_tag_refreshes_corp_tags(stack) -> None:
    group_id = next(iter(stack.emu.world.tag_groups))
    created = await stack.emu.simulate_tag_event("create", name="VIP", group_id=group_id)
    await stack.drain()
    async with stack.runtime.sessions() as session:
        rows = {c.tag_id: c for c in await session.scalars(select(CorpTag))}
    assert rows[created["id"]].tag_name == "VIP" and not rows[created["id"]].deleted
    await stack.emu.simulate_tag_event("delete", id=created["id"])
    await stack.drain()
    async with stack.runtime.sessions() as session:
        row = await session.scalar(select(CorpTag).where(CorpTag.tag_id == created["id"]))
    assert row.deleted is True


async def test_cli_show_prints_tags_attributes_sources_score_and_timeline(stack, capsys, monkeypatch) -> None:
    cust = await customer_of_xiaolin(stack)
    await stack.emu.simulate_kf_message("宝宝八个月了，奶粉喝几段", external_userid=cust)
    await stack.drain()
    text = render(await load_profile(stack.runtime.sessions, cust, stack.clock.now().date()))
    assert "人群/宝妈" in text and "mom_words" in text and "线索分: 10" in text
    assert "宝宝出生月: 2026-03" in text and "宝宝月龄 8 个月" in text and "规则 baby_age" in text
    assert "「宝宝八个月了，奶粉喝几段」" in text and "xiaolin" in text and "从客户消息识别" in text
    # The command itself, on the stack's database (asyncio.run needs a thread of its own).
    monkeypatch.setattr(cli_customer, "load_settings", lambda path: stack.settings)
    args = argparse.Namespace(config=None, external_userid=cust, json=True)
    assert await asyncio.to_thread(cli_customer.cmd_customer_show, args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["external_userid"] == cust and {t["tag"] for t in shown["tags"]} == {"宝妈", "奶粉-2段"}
    args = argparse.Namespace(config=None, external_userid="wmNOBODY", json=False)
    assert await asyncio.to_thread(cli_customer.cmd_customer_show, args) == 1


async def test_a_channel_code_applies_its_entry_tags(stack) -> None:
    added = await stack.emu.simulate_add_contact(userid="zhangmei", state="store_jingan")
    await stack.drain()
    async with stack.runtime.sessions() as session:
        tags = {(t.group_name, t.tag_name): t.source for t in await session.scalars(select(CustomerTag))}
    assert tags == {("渠道", "门店"): "channel:store_jingan", ("门店", "静安店"): "channel:store_jingan"}
    stack.clock.advance(seconds=stack.settings.tagging.sync_delay_seconds + 1)
    await stack.drain()
    [marked] = stack.calls("/cgi-bin/externalcontact/mark_tag")
    body = marked["body"]
    assert (body["userid"], body["external_userid"]) == ("zhangmei", added["external_userid"])
    assert len(body["add_tag"]) == 2
