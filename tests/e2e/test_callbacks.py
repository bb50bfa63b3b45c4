"""Callbacks end to end: real encrypted requests from the emulator into the running service."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.store.models import Customer, Follow, InboxRow, OutboxRow, TimelineEntry


async def count(stack, model, *where) -> int:
    async with stack.runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_url_verification_answers_the_bare_echostr(stack) -> None:
    for app in ("contact", "kf", "robot"):
        result = await stack.emu.simulate_verify_url(app)
        assert result["ok"], result


async def test_bad_signature_is_refused_with_403(stack) -> None:
    plaintext = "<xml><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    params, body = stack.emu.build_callback("contact", plaintext)
    status, _ = await stack.post("contact", {**params, "msg_signature": "0" * 40}, body)
    assert status == 403
    status, _ = await stack.post("kf", params, body)  # signed with the contact app's token
    assert status == 403
    async with stack.http.get(stack.url("contact"), params={**params, "echostr": "abc"}) as resp:
        assert resp.status == 403
    assert await count(stack, InboxRow) == 0


async def test_malformed_bodies_are_refused_with_400(stack) -> None:
    params, _ = stack.emu.build_callback("contact", "<xml/>")
    for body in (b"garbage", b"<xml><Encrypt>x</Encrypt>", b'<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>'):
        status, _ = await stack.post("contact", params, body)
        assert status == 400, body
    # Correctly signed, but the ciphertext is not valid AES output.
    from bot.wecom.crypto import envelope_xml, signature

    token = stack.settings.app("contact").callback_token.get_secret_value()
    bogus = "bm90IGNpcGhlcnRleHQ="
    sig = signature(token, params["timestamp"], params["nonce"], bogus)
    status, _ = await stack.post(
        "contact", {**params, "msg_signature": sig}, envelope_xml("corp", "1", bogus)
    )
    assert status == 400
    assert await count(stack, InboxRow) == 0


async def test_oversize_body_is_refused_with_413(stack_factory) -> None:
    stack = await stack_factory(**{"service.max_body_bytes": 2048})
    params, body = stack.emu.build_callback("contact", "<xml>" + "<A>x</A>" * 600 + "</xml>")
    assert len(body) > 2048
    status, _ = await stack.post("contact", params, body)
    assert status == 413
    assert await count(stack, InboxRow) == 0


async def test_the_same_callback_posted_three_times_is_processed_once(any_stack) -> None:
    stack = any_stack
    result = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12", name="王女士")
    assert result["delivery"]["attempts"] == [200]
    params, body = stack.emu.build_callback("contact", stack.emu.callbacks[-1]["plaintext"])
    for _ in range(2):  # WeCom's retries: same payload, fresh signature
        status, text = await stack.post("contact", params, body)
        assert (status, text) == (200, "")
    await stack.drain()
    cust = result["external_userid"]
    assert await count(stack, InboxRow) == 1
    assert await count(stack, TimelineEntry, TimelineEntry.kind == "contact_added") == 1
    assert len(stack.calls("/externalcontact/get")) == 1
    async with stack.runtime.sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.external_userid == cust))
        follow = await session.scalar(select(Follow).where(Follow.external_userid == cust))
    assert (customer.name, customer.first_state) == ("王女士", "store_12")
    assert (follow.userid, follow.state, follow.status) == ("xiaolin", "store_12", "active")


async def test_two_customers_in_the_same_second_are_two_events(any_stack) -> None:
    stack = any_stack
    pair = await stack.emu.simulate_add_contact_pair("xiaolin", state="store_12")
    await stack.drain()
    assert await count(stack, InboxRow) == 2
    assert await count(stack, Customer) == 2
    assert pair  # both deliveries answered


async def test_unknown_event_is_stored_and_acknowledged(stack) -> None:
    plaintext = (
        "<xml><ToUserName><![CDATA[corp]]></ToUserName><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[brand_new_event]]></Event><CreateTime>1</CreateTime></xml>"
    )
    result = await stack.emu.simulate_raw("contact", plaintext)
    assert result["delivery"]["attempts"] == [200]
    await stack.drain()
    async with stack.runtime.sessions() as session:
        row = await session.scalar(select(InboxRow))
    assert (row.kind, row.status, row.route_key) == ("UnknownEvent", "done", "event/brand_new_event")
    assert "brand_new_event" in row.plaintext


async def test_customer_lifecycle_keeps_follow_rows_current(any_stack) -> None:
    stack = any_stack
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    cust = added["external_userid"]
    await stack.emu.simulate_add_contact(userid="zhangmei", external_userid=cust)
    await stack.emu.simulate_edit_contact("xiaolin", cust)
    await stack.emu.simulate_customer_deletes_guide("zhangmei", cust)
    await stack.emu.simulate_guide_deletes_customer("xiaolin", cust)
    await stack.drain()
    async with stack.runtime.sessions() as session:
        follows = {
            f.userid: f for f in await session.scalars(select(Follow).where(Follow.external_userid == cust))
        }
        customer = await session.scalar(select(Customer).where(Customer.external_userid == cust))
        kinds = list(await session.scalars(select(TimelineEntry.kind).order_by(TimelineEntry.id)))
    assert follows["zhangmei"].status == "deleted_by_customer"
    assert follows["xiaolin"].status == "deleted_by_guide"
    assert customer.status == "no_follow"
    # Welcome sends land on the timeline between the adds; the two adds come first among contact events.
    assert [k for k in kinds if k.startswith("contact_")][:2] == ["contact_added", "contact_added"]
    assert {"contact_edited", "deleted_by_customer", "deleted_by_guide"} <= set(kinds)


async def test_kf_message_is_pulled_once_and_lands_on_the_timeline(any_stack) -> None:
    stack = any_stack
    sent = await stack.emu.simulate_kf_message("奶粉怎么冲泡")
    await stack.drain()
    cust = sent["external_userid"]
    assert len(stack.calls("/kf/sync_msg")) == 1
    entry_query = select(TimelineEntry).where(
        TimelineEntry.external_userid == cust, TimelineEntry.kind == "kf_message"
    )
    async with stack.runtime.sessions() as session:
        entries = list(await session.scalars(entry_query))
    assert len(entries) == 1
    assert entries[0].data["text"] == "奶粉怎么冲泡"
    # A second message: the pull starts from the stored cursor and brings only the new one.
    await stack.emu.simulate_kf_message("几天发货", external_userid=cust)
    await stack.drain()
    second_pull = stack.calls("/kf/sync_msg")[-1]
    assert second_pull["body"].get("cursor")
    assert await count(stack, TimelineEntry, TimelineEntry.kind == "kf_message") == 2
    assert await count(stack, OutboxRow, OutboxRow.status != "sent") == 0
