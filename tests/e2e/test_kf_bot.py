"""The FAQ bot in 微信客服, end to end: real encrypted callbacks in, kf API calls out (emulator)."""

from __future__ import annotations

from sqlalchemy import select

from bot.store.models import HandoffRequest, KfSession, OutboxRow
from bot.wecom.emulator.world import DEMO_OPEN_KFID

SEND = "/cgi-bin/kf/send_msg"


def sends(stack) -> list[dict]:
    """Successful kf/send_msg bodies."""
    return [c["body"] for c in stack.calls(SEND) if c["errcode"] == 0]


async def session_row(stack, cust: str) -> KfSession:
    async with stack.runtime.sessions() as session:
        return await session.get(KfSession, (DEMO_OPEN_KFID, cust))


async def test_a_clear_question_is_answered_once(any_stack) -> None:
    stack = any_stack
    sent = await stack.emu.simulate_kf_message("宝宝八个月了，奶粉怎么冲泡？")
    await stack.drain()
    # WeCom re-sends the notification and a second pull finds nothing new: still one answer.
    await stack.emu.deliver("kf", stack.emu.callbacks[-1]["plaintext"], event="retry")
    await stack.drain()
    [reply] = sends(stack)
    assert reply["msgtype"] == "text" and "温开水" in reply["text"]["content"]
    assert reply["touser"] == sent["external_userid"] and reply["msgid"]
    row = await session_row(stack, sent["external_userid"])
    assert (row.mode, row.sent_since_customer, row.misses) == ("bot", 1, 0)


async def test_a_vague_question_gets_a_menu_and_a_click_gets_the_answer(stack) -> None:
    sent = await stack.emu.simulate_kf_message("奶粉")
    await stack.drain()
    [menu] = sends(stack)
    assert menu["msgtype"] == "msgmenu" and menu["msgmenu"]["head_content"] == "您是想问："
    items = menu["msgmenu"]["list"]
    assert 2 <= len(items) <= 3 and all(i["type"] == "click" for i in items)
    choice = items[0]["click"]
    await stack.emu.simulate_kf_message(
        choice["content"], external_userid=sent["external_userid"], menu_id=choice["id"]
    )
    await stack.drain()
    answer = sends(stack)[-1]
    assert answer["msgtype"] == "text" and answer["text"]["content"]


async def test_asking_for_a_person_hands_off_and_the_bot_goes_quiet(stack) -> None:
    sent = await stack.emu.simulate_kf_message("转人工")
    cust = sent["external_userid"]
    await stack.drain()
    [told] = sends(stack)
    assert "人工" in told["text"]["content"]
    [trans] = stack.calls("/cgi-bin/kf/service_state/trans")
    assert trans["body"]["service_state"] == 2 and trans["errcode"] == 0
    assert stack.emu.world.kf_sessions[(DEMO_OPEN_KFID, cust)].state == 2
    assert (await session_row(stack, cust)).mode == "human"
    # While a person serves, the bot says nothing, whatever the customer asks.
    await stack.emu.simulate_kf_message("奶粉怎么冲泡", external_userid=cust)
    await stack.drain()
    assert len(sends(stack)) == 1
    async with stack.runtime.sessions() as session:
        [request] = list(await session.scalars(select(HandoffRequest)))
    assert (request.reason, request.outside_hours, request.status) == ("asked", False, "open")


async def test_two_misses_in_a_row_hand_off(stack) -> None:
    sent = await stack.emu.simulate_kf_message("这周末天气怎么样")
    cust = sent["external_userid"]
    await stack.drain()
    assert sends(stack) == []  # the first miss: silent, counted
    assert (await session_row(stack, cust)).misses == 1
    await stack.emu.simulate_kf_message("你们老板是谁", external_userid=cust)
    await stack.drain()
    assert len(stack.calls("/cgi-bin/kf/service_state/trans")) == 1
    assert (await session_row(stack, cust)).mode == "human"


async def test_outside_service_hours_the_customer_is_told_when_and_the_request_kept(stack) -> None:
    stack.clock.advance(hours=13, minutes=30)  # 23:30 Shanghai
    await stack.emu.simulate_kf_message("转人工")
    await stack.drain()
    [told] = sends(stack)
    assert "明天" in told["text"]["content"]
    assert stack.calls("/cgi-bin/kf/service_state/trans") == []
    async with stack.runtime.sessions() as session:
        [request] = list(await session.scalars(select(HandoffRequest)))
    assert request.outside_hours is True


async def test_enter_session_is_greeted_within_its_20_seconds(stack) -> None:
    entered = await stack.emu.simulate_kf_enter_session(scene="store_qr")
    await stack.drain()
    [welcome] = stack.calls("/cgi-bin/kf/send_msg_on_event")
    assert welcome["errcode"] == 0 and welcome["body"]["code"] == entered["welcome_code"]
    assert "小禾母婴" in welcome["body"]["text"]["content"]


async def test_cursor_continues_across_a_restart_and_nothing_is_answered_twice(stack) -> None:
    first = await stack.emu.simulate_kf_message("宝宝喝奶粉过敏怎么办")
    cust = first["external_userid"]
    await stack.drain()
    await stack.service.close()
    await stack.restart()
    await stack.emu.simulate_kf_message("奶粉怎么冲泡", external_userid=cust)
    await stack.drain()
    pulls = stack.calls("/cgi-bin/kf/sync_msg")
    assert pulls[-1]["body"].get("cursor"), "the restarted service pulled from the stored cursor"
    replies = sends(stack)
    assert len(replies) == 2 and len({r["msgid"] for r in replies}) == 2


async def test_the_bot_never_exceeds_kf_5_message_rule(stack) -> None:
    sent = await stack.emu.simulate_kf_message("奶粉怎么冲泡")
    cust = sent["external_userid"]
    await stack.drain()
    for _ in range(6):  # the customer keeps writing: each message opens a new window of 5
        await stack.emu.simulate_kf_message("宝宝喝奶粉过敏怎么办", external_userid=cust)
    await stack.drain()
    assert all(c["errcode"] == 0 for c in stack.calls(SEND))  # never 95001 / 95002
    # One answer before the burst; after it WeCom allows 5, so the oldest of the six is not answered.
    assert len(sends(stack)) == 1 + 5
    row = await session_row(stack, cust)
    assert row.sent_since_customer <= 5
    async with stack.runtime.sessions() as session:
        failed = list(await session.scalars(select(OutboxRow).where(OutboxRow.status == "failed")))
    assert failed == []
