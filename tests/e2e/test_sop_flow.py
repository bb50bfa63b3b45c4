"""Lifecycle and SOP end to end: enrolled on add, steps on the clock, a reply branches, opt-out stops."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.store.models import Customer, Enrollment, SopLog, TimelineEntry

TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"
NEW_CONTACT = Enrollment.playbook_id == "new_contact"


async def rows(stack, model, *where):
    async with stack.runtime.sessions() as session:
        return list(await session.scalars(select(model).where(*where).order_by(*model.__table__.primary_key)))


async def test_new_contact_is_enrolled_and_steps_follow_the_clock_and_her_reply(stack_factory) -> None:
    stack = await stack_factory(**{"archive.enabled": True})
    stack.clock.set(dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))  # Monday 09:00
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12", name="李女士")
    customer = added["external_userid"]
    await stack.drain()
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.stage == "加微"
    [run] = await rows(stack, Enrollment, Enrollment.external_userid == customer, NEW_CONTACT)
    assert (run.playbook_id, run.step_id, run.state) == ("new_contact", "d0_trial_pack", "due")

    stack.clock.advance(hours=1)  # the trial pack, one hour after the add: a task for her guide
    await stack.drain()
    [task] = stack.calls(TEMPLATE)
    assert task["body"]["sender"] == "xiaolin" and task["body"]["external_userid"] == [customer]

    stack.clock.set(dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI))  # day 1, 10:00: ask the baby's age
    await stack.drain()
    assert len(stack.calls(TEMPLATE)) == 2
    [run] = await rows(stack, Enrollment, Enrollment.external_userid == customer, NEW_CONTACT)
    assert (run.step_id, run.state) == ("d1_ask_age", "waiting")

    stack.clock.advance(hours=2)
    await stack.emu.simulate_archive_message(customer, "宝宝8个月了")
    await stack.drain()
    [run] = await rows(stack, Enrollment, Enrollment.external_userid == customer, NEW_CONTACT)
    assert (run.step_id, run.state) == ("d3_member", "due")  # she replied: the member invite branch
    assert dt.datetime.fromtimestamp(run.due_at, SHANGHAI) == dt.datetime(
        2026, 11, 26, 20, 30, tzinfo=SHANGHAI
    )

    stack.clock.advance(hours=1)
    await stack.emu.simulate_archive_message(customer, "别发了")
    await stack.drain()
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.unsubscribed_at is not None
    stack.clock.set(dt.datetime(2026, 11, 26, 20, 30, tzinfo=SHANGHAI))
    await stack.drain()
    [run] = await rows(stack, Enrollment, Enrollment.external_userid == customer, NEW_CONTACT)
    assert run.state == "exited"
    assert len(stack.calls(TEMPLATE)) == 2  # nothing more after "别发了"
    log = await rows(stack, SopLog, SopLog.external_userid == customer, SopLog.playbook_id == "new_contact")
    outcomes = [(r.step_id, r.outcome) for r in log]
    assert outcomes[:3] == [("d0_trial_pack", "sent"), ("d1_ask_age", "sent"), ("d1_ask_age", "branched")]
    assert outcomes[-1][1] == "exited"
    from bot import profile

    found = await profile.load_profile(stack.runtime.sessions, customer, stack.clock.now().date())
    kinds = [e.kind for e in found.timeline]
    assert kinds.count("sop_sent") >= 2 and "sop_exited" in kinds and "stage" in kinds


async def test_a_learnt_birth_month_books_the_dated_playbook_and_a_tag_starts_its_playbook_once(
    stack_factory,
) -> None:
    from bot.store.models import TimerRow

    stack = await stack_factory()
    stack.clock.set(dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    customer = added["external_userid"]
    await stack.drain()
    await stack.emu.simulate_kf_message("宝宝八个月了", external_userid=customer)
    await stack.drain()
    timers = await rows(stack, TimerRow, TimerRow.kind == "sop_date")
    # Born 2026-03: she is in her 8th month now (due at once) and 12 is ahead; 1, 3 and 6 are past.
    assert sorted(t.payload["months"] for t in timers) == [8, 12]
    assert {t.payload["playbook"] for t in timers} == {"baby_month"}
    stack.clock.set(dt.datetime.fromtimestamp(min(t.due_at for t in timers), SHANGHAI))
    await stack.drain()
    runs = await rows(
        stack, Enrollment, Enrollment.external_userid == customer, Enrollment.playbook_id == "baby_month"
    )
    assert len(runs) == 1


async def test_opt_out_in_a_guide_chat_is_confirmed_by_the_guide_and_can_be_undone(stack_factory) -> None:
    stack = await stack_factory(**{"archive.enabled": True})
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    customer = added["external_userid"]
    await stack.drain()
    await stack.emu.simulate_archive_message(customer, "别发了谢谢")
    await stack.drain()
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.unsubscribed_at is not None
    notices = [c["body"] for c in stack.calls("/cgi-bin/message/send") if c["errcode"] == 0]
    assert len(notices) == 1 and notices[0]["touser"] == "xiaolin" and "退订" in notices[0]["text"]["content"]
    await stack.emu.simulate_archive_message(customer, "别发了")  # said again: no second confirmation
    await stack.drain()
    assert len([c for c in stack.calls("/cgi-bin/message/send") if c["errcode"] == 0]) == 1
    stack.clock.advance(hours=1)
    await stack.emu.simulate_archive_message(customer, "恢复推送")
    await stack.drain()
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.unsubscribed_at is None


async def _run_until(stack, when: dt.datetime, step: dt.timedelta = dt.timedelta(hours=6)) -> None:
    """Let the service run up to `when` as if it never stopped."""
    while stack.clock.now() < when:
        stack.clock.set(min(when, stack.clock.now() + step))
        await stack.drain()


async def test_a_quiet_customer_is_recalled_and_her_click_takes_the_click_branch(stack_factory) -> None:
    import re

    stack = await stack_factory()
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    stack.clock.set(start)
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    customer = added["external_userid"]
    await stack.drain()
    await _run_until(stack, start + dt.timedelta(days=10))
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.stage == "留存"  # still a contact after 7 days
    await _run_until(stack, start + dt.timedelta(days=32, hours=3))
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.stage == "沉默"  # 30 days without a word
    recall = [c for c in stack.calls(TEMPLATE) if "好久没聊" in c["body"]["text"]["content"]]
    assert len(recall) == 1
    [link] = [a["link"] for a in recall[0]["body"]["attachments"] if a["msgtype"] == "link"]
    token = re.fullmatch(r".*/r/([A-Za-z0-9_-]+)", link["url"]).group(1)
    async with stack.http.get(stack.service.make_url(f"/r/{token}"), allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, "https://shop.example.com/member/monthly")
    await stack.drain()
    await _run_until(stack, stack.clock.now() + dt.timedelta(hours=3), dt.timedelta(hours=1))
    log = await rows(
        stack, SopLog, SopLog.external_userid == customer, SopLog.playbook_id == "dormant_recall"
    )
    assert ("r1_hello", "branched", "click") in [(r.step_id, r.outcome, r.reason) for r in log]
    assert ("r2_guide_follow_up", "sent", "guide_notify") in [(r.step_id, r.outcome, r.route) for r in log]


async def test_an_order_converts_and_after_sales_care_follows(stack_factory) -> None:
    import json

    from bot.orders import SIGNATURE_HEADER, sign

    stack = await stack_factory(**{"sop.order_webhook_secret": "k"})
    stack.clock.set(dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
    added = await stack.emu.simulate_add_contact(userid="xiaolin", state="store_12")
    customer = added["external_userid"]
    await stack.drain()
    body = json.dumps(
        {
            "order_id": "SO-1",
            "external_userid": customer,
            "amount_cents": 25900,
            "paid_at": stack.clock.timestamp(),
        }
    ).encode()
    url = stack.service.make_url("/api/events/order")
    for _ in range(2):  # the shop resends: handled once
        async with stack.http.post(url, data=body, headers={SIGNATURE_HEADER: sign("k", body)}) as resp:
            assert resp.status == 200
    await stack.drain()
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.stage == "转化"
    await _run_until(stack, stack.clock.now() + dt.timedelta(days=4))
    [who] = await rows(stack, Customer, Customer.external_userid == customer)
    assert who.stage == "售后"
    runs = await rows(stack, Enrollment, Enrollment.external_userid == customer)
    assert "after_sales" in {r.playbook_id for r in runs}
    timeline = await rows(
        stack, TimelineEntry, TimelineEntry.external_userid == customer, TimelineEntry.kind == "order"
    )
    assert len(timeline) == 1


async def test_serve_runs_the_sop_loops_on_postgresql_and_one_on_sqlite(any_stack) -> None:
    runtime = any_stack.runtime
    await runtime.start_workers()
    names = sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("siyu-sop"))
    expected = runtime.settings.sop.workers if runtime.engine.dialect.name == "postgresql" else 1
    assert expected > 1 or runtime.engine.dialect.name == "sqlite"
    assert names == sorted(["siyu-sop", *(f"siyu-sop-{i}" for i in range(2, expected + 1))])
