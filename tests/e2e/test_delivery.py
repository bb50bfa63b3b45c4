"""Exactly-once in and out: retries, crashes, dead letters and WeCom faults, end to end."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from bot import actions as act
from bot import events
from bot.kv import MemoryKV
from bot.router import Router
from bot.runtime import default_routers
from bot.store.models import InboxRow, OutboxRow, TimelineEntry
from bot.wecom.client import WeComClient
from bot.wecom.tokens import TokenCache

WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"


def welcome_router(fail_times: int = 0) -> tuple[Router, list[int]]:
    """A test capability that greets every new contact, failing its first `fail_times` calls."""
    router, calls = Router("greeter"), []

    @router.on(events.ContactAdded)
    def greet(event: events.ContactAdded, deps) -> list[act.Action]:
        calls.append(1)
        if len(calls) <= fail_times:
            raise RuntimeError("content store briefly unavailable")
        return [
            act.SendWelcome(
                event.welcome_code,
                event.external_userid,
                text="您好，欢迎来到小禾母婴！",
                event_time=float(event.create_time),
            )
        ]

    return router, calls


def other_routers() -> tuple[Router, ...]:
    """The default routers but the real welcome capability: the test greeter owns the WelcomeCode here."""
    return tuple(r for r in default_routers() if r.name != "welcome")


async def rows(stack, model, *where):
    async with stack.runtime.sessions() as session:
        return list(await session.scalars(select(model).where(*where)))


async def test_handler_failing_twice_then_succeeding_is_processed_once(stack_factory, backend) -> None:
    greeter, calls = welcome_router(fail_times=2)
    stack = await stack_factory(routers=(greeter, *other_routers()), **backend)
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    await stack.drain()
    [row] = await rows(stack, InboxRow)
    assert (row.status, row.attempts, row.done_routers) == (
        "pending",
        1,
        ["timeline", "tagging", "lifecycle"],
    )
    for _ in range(2):
        [row] = await rows(stack, InboxRow)
        stack.clock.advance(seconds=row.available_at - stack.clock.timestamp() + 0.001)
        await stack.drain()
    [row] = await rows(stack, InboxRow)
    assert (row.status, row.attempts) == ("done", 2)
    assert len(calls) == 3
    assert [c["errcode"] for c in stack.calls(WELCOME)] == [0]
    assert stack.calls(WELCOME)[0]["body"]["welcome_code"] == added["welcome_code"]
    # The timeline router succeeded on the first attempt and was not run again.
    assert len(await rows(stack, TimelineEntry, TimelineEntry.kind == "contact_added")) == 1


async def test_handler_failing_for_good_is_dead_lettered_and_replayable(stack_factory) -> None:
    greeter, calls = welcome_router(fail_times=99)
    stack = await stack_factory(routers=(greeter, *other_routers()), **{"inbox.max_attempts": 3})
    await stack.emu.simulate_add_contact(userid="xiaolin")
    for _ in range(4):
        await stack.drain()
        stack.clock.advance(seconds=600)
    failed = await stack.runtime.inbox.failed()
    assert [(r.status, r.attempts) for r in failed] == [("failed", 3)]
    assert "greeter: RuntimeError" in failed[0].last_error
    assert len(calls) == 3
    # Ops fix the cause and replay: only the failed router runs again.
    greeter.routes.clear()
    greeter.on(events.ContactAdded)(lambda event, deps: [])
    assert await stack.runtime.inbox.replay(failed[0].id)
    await stack.drain()
    [row] = await rows(stack, InboxRow)
    assert row.status == "done"
    assert len(await rows(stack, TimelineEntry, TimelineEntry.kind == "contact_added")) == 1


@pytest.mark.parametrize("claimed", [False, True], ids=["stored", "claimed"])
async def test_killed_between_inbox_write_and_processing_is_processed_after_restart(
    stack_factory, claimed: bool
) -> None:
    greeter, _ = welcome_router()
    stack = await stack_factory(routers=(greeter, *other_routers()))
    added = await stack.emu.simulate_add_contact(userid="xiaolin")
    if claimed:  # the worker had claimed the row when the process died
        await stack.runtime.inbox.claim(10, lease=60)
    [row] = await rows(stack, InboxRow)
    assert row.status == ("processing" if claimed else "pending")
    await stack.service.close()  # the process goes away without processing anything
    assert stack.calls(WELCOME) == []

    await stack.restart((greeter, *other_routers()))
    await stack.drain()
    [row] = await rows(stack, InboxRow)
    assert row.status == "done"
    assert [c["body"]["welcome_code"] for c in stack.calls(WELCOME)] == [added["welcome_code"]]


@pytest.mark.parametrize("errcode", [-1, 45009, 42001])
async def test_wecom_fault_on_the_way_out_is_retried_and_sent_once(
    stack_factory, backend, errcode: int
) -> None:
    greeter, _ = welcome_router()
    stack = await stack_factory(routers=(greeter, *other_routers()), **backend)
    stack.emu.add_fault(WELCOME, errcode=errcode, count=1)
    added = await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.drain()
    if errcode != 42001:
        # -1 / 45009: the row waits for its backoff, inside the 20 s window.
        [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
        assert (row.status, row.last_errcode, row.attempts) == ("pending", errcode, 1)
        assert row.available_at < row.deadline_at
        stack.clock.advance(seconds=row.available_at - stack.clock.timestamp() + 0.001)
        await stack.drain()
    codes = [c["errcode"] for c in stack.calls(WELCOME)]
    assert codes == [errcode, 0]
    [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
    assert row.status == "sent"
    assert stack.calls(WELCOME)[-1]["body"]["welcome_code"] == added["welcome_code"]
    if errcode == 42001:  # the token was refreshed once, then the call replayed
        assert len(stack.calls("/cgi-bin/gettoken")) == 2
    assert len(await rows(stack, TimelineEntry, TimelineEntry.kind == "welcome_sent")) == 1


async def test_welcome_past_its_20s_window_is_recorded_not_sent(stack_factory) -> None:
    greeter, _ = welcome_router()
    stack = await stack_factory(routers=(greeter, *other_routers()))
    await stack.emu.simulate_add_contact(userid="xiaolin")
    # The inbox processes it, but the outbox is held up past the window (e.g. the service was down).
    await stack.runtime.worker.run_once()
    stack.clock.advance(seconds=25)
    await stack.drain()
    assert stack.calls(WELCOME) == []
    [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
    assert row.status == "failed" and "deadline" in row.last_error
    [entry] = await rows(stack, TimelineEntry, TimelineEntry.kind == "send_failed")
    assert entry.data["kind"] == "send_welcome"


async def test_permanent_errcode_is_recorded_with_its_code(stack_factory) -> None:
    greeter, _ = welcome_router()
    stack = await stack_factory(routers=(greeter, *other_routers()))
    stack.emu.add_fault(WELCOME, errcode=41051)
    await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.drain()
    [row] = await rows(stack, OutboxRow, OutboxRow.status == "failed")
    assert (row.kind, row.last_errcode, row.attempts) == ("send_welcome", 41051, 1)
    assert len(stack.calls(WELCOME)) == 1


async def test_transient_errors_until_the_window_closes_end_as_failed(stack_factory) -> None:
    greeter, _ = welcome_router()
    stack = await stack_factory(routers=(greeter, *other_routers()))
    stack.emu.add_fault(WELCOME, errcode=-1, count=100)
    await stack.emu.simulate_add_contact(userid="xiaolin")
    for _ in range(30):
        await stack.drain()
        stack.clock.advance(seconds=2)
    [row] = await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")
    assert row.status == "failed" and row.last_errcode == -1
    assert 1 < len(stack.calls(WELCOME)) < 30


async def test_replayed_decision_after_a_crash_never_adds_a_second_send(stack_factory) -> None:
    greeter, _ = welcome_router()
    stack = await stack_factory(routers=(greeter, *other_routers()))
    await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.drain()
    # Simulate a crash after the outbox commit but before the inbox row was marked: run it again.
    async with stack.runtime.sessions.begin() as session:
        await session.execute(update(InboxRow).values(status="pending", done_routers=[]))
    await stack.drain()
    assert len(await rows(stack, OutboxRow, OutboxRow.kind == "send_welcome")) == 1
    assert len(stack.calls(WELCOME)) == 1


async def _shared_token_calls(stack, kv_a, kv_b) -> int:
    clients = [
        WeComClient.from_settings(
            stack.settings, stack.http, TokenCache(kv, stack.clock, margin=300), kv, stack.clock
        )
        for kv in (kv_a, kv_b)
    ]
    import asyncio

    await asyncio.gather(*(c.get_follow_user_list() for c in clients for _ in range(5)))
    return len(stack.calls("/cgi-bin/gettoken"))


async def test_token_shared_by_two_clients_in_one_process_is_fetched_once(stack) -> None:
    kv = MemoryKV(stack.clock)
    assert await _shared_token_calls(stack, kv, kv) == 1


async def test_token_shared_by_two_clients_through_redis_is_fetched_once(stack, redis_url) -> None:
    import uuid

    import redis.asyncio as aioredis

    from bot.kv import RedisKV

    prefix = f"siyu-test:{uuid.uuid4().hex}:"
    a = RedisKV(aioredis.from_url(redis_url, decode_responses=True), prefix)
    b = RedisKV(aioredis.from_url(redis_url, decode_responses=True), prefix)
    try:
        assert await _shared_token_calls(stack, a, b) == 1
    finally:
        raw = aioredis.from_url(redis_url, decode_responses=True)
        keys = [k async for k in raw.scan_iter(f"{prefix}*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await a.close()
        await b.close()
