"""Welcome scripts end to end: real encrypted add callbacks from the emulator, sends in its journal."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.store.models import OutboxRow, TimelineEntry, WelcomeAssignment

WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"
UPLOAD = "/cgi-bin/media/upload"


async def rows(stack, model, *where):
    async with stack.runtime.sessions() as session:
        return list(await session.scalars(select(model).where(*where)))


@pytest.fixture
async def wstack(stack):
    """The default stack (the runtime wires the welcome reader and the media cache)."""
    assert stack.runtime.outbox._ctx.kv is stack.runtime.kv
    assert stack.runtime.deps.welcome_history is not None
    return stack


async def test_welcome_uses_the_script_and_uploads_the_image_once(wstack) -> None:
    stack = wstack
    first = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    await stack.drain()
    second = await stack.emu.simulate_add_contact(userid="zhangmei", state="store_12")
    await stack.drain()
    sends = stack.calls(WELCOME)
    assert [c["errcode"] for c in sends] == [0, 0]
    assert [c["body"]["welcome_code"] for c in sends] == [first["welcome_code"], second["welcome_code"]]
    # Sunday 10:00 from a store code: the everyday script, with each guide's name and store.
    assert (
        "小林" in sends[0]["body"]["text"]["content"] and "徐汇旗舰店" in sends[0]["body"]["text"]["content"]
    )
    assert (
        "张美" in sends[1]["body"]["text"]["content"] and "静安嘉里店" in sends[1]["body"]["text"]["content"]
    )
    images = [c["body"]["attachments"][0] for c in sends]
    assert all(i["msgtype"] == "image" and i["image"]["media_id"] for i in images)
    assert images[0]["image"]["media_id"] == images[1]["image"]["media_id"]
    assert len(stack.calls(UPLOAD)) == 1  # the second welcome reused the cached media_id
    assigned = await rows(stack, WelcomeAssignment)
    assert {(a.userid, a.script_id) for a in assigned} == {("xiaolin", "standard"), ("zhangmei", "standard")}
    assert len(await rows(stack, TimelineEntry, TimelineEntry.kind == "welcome_sent")) == 2


async def test_returning_customer_gets_the_welcome_back_with_their_name(wstack) -> None:
    stack = wstack
    first = await stack.emu.simulate_add_contact(userid="zhangmei", name="王女士")
    await stack.drain()  # externalcontact/get stored the name
    await stack.emu.simulate_add_contact(userid="xiaolin", external_userid=first["external_userid"])
    await stack.drain()
    text = stack.calls(WELCOME)[-1]["body"]["text"]["content"]
    assert text.startswith("王女士欢迎回来") and "徐汇旗舰店" in text
    [again] = await rows(stack, WelcomeAssignment, WelcomeAssignment.userid == "xiaolin")
    assert again.script_id == "welcome_back"


async def test_the_same_add_callback_three_times_sends_one_welcome(wstack) -> None:
    stack = wstack
    result = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    params, body = stack.emu.build_callback("contact", stack.emu.callbacks[-1]["plaintext"])
    for _ in range(2):
        await stack.drain()
        assert (await stack.post("contact", params, body))[0] == 200
    await stack.drain()
    assert [c["body"]["welcome_code"] for c in stack.calls(WELCOME)] == [result["welcome_code"]]
    assert len(await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")) == 1
    assert len(await rows(stack, WelcomeAssignment)) == 1


async def test_already_delivered_41051_is_recorded_not_retried(wstack) -> None:
    stack = wstack
    added = await stack.emu.simulate_add_contact(userid="xiaolin")
    # Another app greeted the customer first.
    stack.emu.hold_welcome_code(added["welcome_code"])
    stack.emu.release_welcome_code(added["welcome_code"], delivered=True)
    await stack.drain()
    stack.clock.advance(seconds=30)
    await stack.drain()
    assert [c["errcode"] for c in stack.calls(WELCOME)] == [41051]
    [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
    assert (row.status, row.last_errcode, row.attempts) == ("failed", 41051, 1)
    [entry] = await rows(stack, TimelineEntry, TimelineEntry.kind == "send_failed")
    assert "已收到过欢迎语" in entry.data["reason"]


async def test_being_distributed_41096_is_retried_inside_the_window(wstack) -> None:
    stack = wstack
    added = await stack.emu.simulate_add_contact(userid="xiaolin")
    stack.emu.hold_welcome_code(added["welcome_code"])  # another app is sending; not yet confirmed
    await stack.drain()
    [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
    assert (row.status, row.last_errcode) == ("pending", 41096)
    assert row.available_at < row.deadline_at == added["create_time"] + 20
    stack.emu.release_welcome_code(added["welcome_code"], delivered=False)  # theirs did not go out
    stack.clock.advance(seconds=row.available_at - stack.clock.timestamp() + 0.001)
    await stack.drain()
    assert [c["errcode"] for c in stack.calls(WELCOME)] == [41096, 0]
    assert len(await rows(stack, TimelineEntry, TimelineEntry.kind == "welcome_sent")) == 1


@pytest.mark.parametrize(("delay", "sent"), [(19.5, True), (20.0, False), (25.0, False)])
async def test_the_20s_window_is_measured_from_the_event(wstack, delay: float, sent: bool) -> None:
    stack = wstack
    await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.runtime.worker.run_once()  # decided at once; the outbox is held up (e.g. a busy process)
    stack.clock.advance(seconds=delay)
    await stack.drain()
    [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
    if sent:
        assert row.status == "sent" and [c["errcode"] for c in stack.calls(WELCOME)] == [0]
        return
    assert stack.calls(WELCOME) == []
    assert row.status == "failed" and "deadline" in row.last_error
    [entry] = await rows(stack, TimelineEntry, TimelineEntry.kind == "send_failed")
    assert entry.data["kind"] == "send_welcome" and "deadline" in entry.data["reason"]


async def test_add_without_a_welcome_code_says_why_on_the_timeline(wstack) -> None:
    stack = wstack
    stack.emu.options.console_welcome_for.add("xiaolin")  # the admin console has its own welcome
    added = await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.drain()
    assert added["welcome_code"] is None and stack.calls(WELCOME) == []
    [entry] = await rows(stack, TimelineEntry, TimelineEntry.kind == "welcome_skipped")
    assert "WelcomeCode" in entry.summary and entry.data["reason"] == "no_welcome_code"
    assert await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome") == []


async def test_half_add_is_greeted_too(wstack) -> None:
    stack = wstack
    added = await stack.emu.simulate_add_half_contact("zhangmei")
    await stack.drain()
    assert [c["body"]["welcome_code"] for c in stack.calls(WELCOME)] == [added["welcome_code"]]
