"""`siyu demo`: the emulator and the service on the embedded default, one customer's story, a timeline.

Both run as real HTTP servers on free local ports; the emulator sends real encrypted callbacks
and the service calls the emulator's /cgi-bin API. The workers are stepped (`Runtime.drain`) on a
simulated clock, so the story is the same on every run and nothing waits on wall time.
Each chapter checks what it expects; the demo exits 1 when any check fails.
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.app import create_app
from bot.appkeys import RUNTIME
from bot.clock import SHANGHAI, FrozenClock
from bot.config import Settings
from bot.runtime import Runtime
from bot.store.models import Customer, Enrollment, Follow, InboxRow, OutboxRow, SopLog, TimelineEntry
from bot.wecom.emulator import EMULATOR_STATE, EmulatorState, create_emulator

STORY_START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
GUIDE = "xiaolin"
CHANNEL = "store_jingan"


@dataclass
class Demo:
    """The running pair and what the story has checked so far."""

    clock: FrozenClock
    runtime: Runtime
    emu: EmulatorState
    out: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        """Record and print one expectation."""
        self.out(f"   {'✓' if ok else '✗'} {what}")
        if not ok:
            self.failures.append(what)

    async def settle(self) -> None:
        """Let the service work through everything due now."""
        await self.runtime.drain()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def run_demo(base: Settings, *, keep: bool = False, out: Callable[[str], None] = print) -> int:
    """Run the story; 0 when every check held."""
    workdir = Path(tempfile.mkdtemp(prefix="siyu-demo-"))
    emu_port, svc_port = _free_port(), _free_port()
    settings = base.with_overrides(
        **{
            "database.url": f"sqlite+aiosqlite:///{workdir / 'siyu.db'}",
            "redis.url": None,
            "wecom.base_url": f"http://127.0.0.1:{emu_port}",
            "service.port": svc_port,
            "service.public_url": f"http://127.0.0.1:{svc_port}",
            "emulator.port": emu_port,
            "emulator.callback_base_url": f"http://127.0.0.1:{svc_port}",
        }
    )
    clock = FrozenClock(STORY_START)
    emulator_app = create_emulator(settings, clock=clock, seed=2026)
    service_app = create_app(settings, clock=clock, run_workers=False)
    runners = [await _start(emulator_app, emu_port)]
    try:
        runners.append(await _start(service_app, svc_port))
        demo = Demo(clock, service_app[RUNTIME], emulator_app[EMULATOR_STATE], out)
        out("Siyu demo — 小禾母婴 on the WeCom emulator (embedded SQLite, simulated clock)")
        out(
            f"   service  http://127.0.0.1:{svc_port}   emulator http://127.0.0.1:{emu_port}   data {workdir}"
        )
        await chapter_channel_codes(demo)
        customer = await chapter_new_contact(demo)
        await chapter_kf_message(demo, customer)
        await chapter_kf_menu(demo, customer)
        await chapter_kf_handoff(demo, customer)
        await chapter_wecom_retry(demo)
        await print_timeline(demo, customer)
        weekend_customer = await chapter_weekend_evening(demo)
        await chapter_sop(demo, weekend_customer)
        await print_calls(demo)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        if not keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    if demo.failures:
        out(f"\nDEMO FAILED: {len(demo.failures)} check(s) did not hold:")
        for failure in demo.failures:
            out(f"   - {failure}")
        return 1
    out("\nDemo finished: every check held.")
    return 0


async def chapter_channel_codes(demo: Demo) -> None:
    """Ops sync the channel live codes in channels.yaml: one QR code per store and campaign."""
    from pathlib import Path

    from bot import channel_sync, channels

    demo.out("\n0. Ops sync the channel live codes (content_library/channels.yaml)")
    library = channels.load_channels(Path(demo.runtime.settings.content.dir) / "channels.yaml")
    results = await channel_sync.sync(
        demo.runtime.client,
        demo.runtime.sessions,
        library,
        demo.clock.now().date(),
        now=demo.clock.timestamp(),
    )
    for result in results:
        demo.out(f"   {result.name:<6} state={result.state:<14} {','.join(result.users):<28} {result.change}")
    demo.check(
        bool(results) and all(r.change == "added" and r.qr_code for r in results),
        f"{len(results)} codes created with add_contact_way, each with its QR code",
    )
    again = await channel_sync.sync(
        demo.runtime.client,
        demo.runtime.sessions,
        library,
        demo.clock.now().date(),
        now=demo.clock.timestamp(),
    )
    demo.check(all(r.change == "unchanged" for r in again), "a second sync changes nothing")


async def chapter_new_contact(demo: Demo) -> str:
    """A customer scans the Jing'an store's channel code and adds guide 小林."""
    demo.out("\n1. 王女士 scans the 静安店 channel code and adds guide 小林")
    added = await demo.emu.simulate_add_contact(userid=GUIDE, state=CHANNEL, name="王女士")
    demo.check(added["delivery"]["attempts"] == [200], "callback add_external_contact acknowledged with 200")
    await demo.settle()
    customer = added["external_userid"]
    async with demo.runtime.sessions() as session:
        row = await session.scalar(select(Customer).where(Customer.external_userid == customer))
        follow = await session.scalar(select(Follow).where(Follow.external_userid == customer))
    demo.check(
        row is not None and row.name == "王女士", "customer stored, name fetched with externalcontact/get"
    )
    demo.check(row is not None and row.first_state == CHANNEL, f"channel attributed from State={CHANNEL}")
    demo.check(follow is not None and follow.userid == GUIDE, "follow relation 王女士 × 小林 recorded")
    welcome = [c for c in demo.emu.calls("/externalcontact/send_welcome_msg") if c["errcode"] == 0]
    demo.check(
        len(welcome) == 1 and welcome[0]["body"]["welcome_code"] == added["welcome_code"],
        "welcome script sent within 20 s (send_welcome_msg, with the size-chart image uploaded once)",
    )
    return customer


async def chapter_kf_message(demo: Demo, customer: str) -> None:
    """She writes to 微信客服; the first pull meets a WeCom 'system busy' and is retried."""
    demo.out(
        "\n2. She asks 微信客服 「宝宝八个月了，奶粉怎么冲泡？」; WeCom answers the first kf/sync_msg with -1"
    )
    demo.emu.add_fault("/cgi-bin/kf/sync_msg", errcode=-1, count=1)
    await demo.emu.simulate_kf_message("宝宝八个月了，奶粉怎么冲泡？", external_userid=customer)
    demo.clock.advance(seconds=1)
    await demo.settle()
    async with demo.runtime.sessions() as session:
        sync = await session.scalar(select(OutboxRow).where(OutboxRow.kind == "kf_sync"))
    demo.check(
        sync is not None and sync.status == "pending" and sync.last_errcode == -1,
        "kf/sync_msg failed with -1 and waits for its backoff",
    )
    if sync is not None:
        demo.clock.advance(seconds=max(0.0, sync.available_at - demo.clock.timestamp()) + 0.01)
    await demo.settle()
    codes = [c["errcode"] for c in demo.emu.calls("/cgi-bin/kf/sync_msg")]
    demo.check(codes == [-1, 0], f"retried with backoff and pulled once (errcodes {codes})")
    async with demo.runtime.sessions() as session:
        kinds = list(
            await session.scalars(select(TimelineEntry.kind).where(TimelineEntry.external_userid == customer))
        )
    demo.check(kinds.count("kf_message") == 1, "the kf message is on her timeline exactly once")
    answers = _kf_sends(demo)
    demo.check(
        len(answers) == 1 and "温开水" in answers[0].get("text", {}).get("content", ""),
        "the FAQ bot answered 奶粉怎么冲泡 once, in kf",
    )


def _kf_sends(demo: Demo) -> list[dict[str, Any]]:
    return [c["body"] for c in demo.emu.calls("/cgi-bin/kf/send_msg") if c["errcode"] == 0]


async def chapter_kf_menu(demo: Demo, customer: str) -> None:
    """A vague question gets a menu of the likely questions; her click gets the answer."""
    demo.out("\n3. She asks something vague: 「纸尿裤」")
    await demo.emu.simulate_kf_message("纸尿裤", external_userid=customer)
    demo.clock.advance(seconds=30)
    await demo.settle()
    menu = _kf_sends(demo)[-1]
    items = menu.get("msgmenu", {}).get("list", [])
    titles = "、".join(i["click"]["content"] for i in items)
    demo.check(
        menu.get("msgtype") == "msgmenu" and len(items) >= 2, f"the bot offered a menu: 您是想问：{titles}"
    )
    if not items:
        return
    choice = items[0]["click"]
    await demo.emu.simulate_kf_message(choice["content"], external_userid=customer, menu_id=choice["id"])
    demo.clock.advance(seconds=30)
    await demo.settle()
    answer = _kf_sends(demo)[-1]
    demo.check(answer.get("msgtype") == "text", f"she tapped 「{choice['content']}」 and got its answer")


async def chapter_kf_handoff(demo: Demo, customer: str) -> None:
    """She asks for a person: the chat moves to the kf queue and the bot keeps quiet."""
    demo.out("\n4. She writes 「转人工」")
    await demo.emu.simulate_kf_message("转人工", external_userid=customer)
    demo.clock.advance(seconds=30)
    await demo.settle()
    trans = demo.emu.calls("/cgi-bin/kf/service_state/trans")
    demo.check(
        len(trans) == 1 and trans[0]["body"].get("service_state") == 2 and trans[0]["errcode"] == 0,
        "kf/service_state/trans moved the chat to the waiting queue (state 2), after telling her",
    )
    before = len(_kf_sends(demo))
    await demo.emu.simulate_kf_message("奶粉怎么冲泡", external_userid=customer)
    demo.clock.advance(seconds=30)
    await demo.settle()
    demo.check(len(_kf_sends(demo)) == before, "while a person serves, the bot stays quiet")


async def chapter_wecom_retry(demo: Demo) -> None:
    """WeCom re-sends the add callback (it did not see our 200 in time): acknowledged, not redone."""
    demo.out("\n5. WeCom re-sends the add_external_contact callback")
    first = next(c for c in demo.emu.callbacks if c["event"].endswith("add_external_contact"))
    again = await demo.emu.deliver("contact", first["plaintext"], event="retry")
    await demo.settle()
    async with demo.runtime.sessions() as session:
        added = list(
            await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "contact_added"))
        )
        inbox = list(await session.scalars(select(InboxRow)))
    demo.check(again["attempts"] == [200], "the retry is acknowledged with 200")
    demo.check(len(added) == 1, "and not processed a second time (one contact_added entry)")
    demo.check(len(demo.emu.calls("/externalcontact/get")) == 1, "no second externalcontact/get")
    demo.check(all(r.status == "done" for r in inbox), f"inbox: {len(inbox)} rows, all done")


SATURDAY_EVENING = dt.datetime(2026, 11, 28, 21, 0, tzinfo=SHANGHAI)


async def chapter_weekend_evening(demo: Demo) -> str:
    """Saturday 21:00: a new customer scans the store code, gets the weekend-evening welcome, is tagged."""
    demo.clock.set(SATURDAY_EVENING)
    demo.out("\n6. Saturday 21:00 — 陈女士 scans the 静安店 code (guide 张美)")
    added = await demo.emu.simulate_add_contact(userid="zhangmei", state=CHANNEL, name="陈女士")
    await demo.settle()
    welcome = [c for c in demo.emu.calls("/externalcontact/send_welcome_msg") if c["errcode"] == 0]
    text = welcome[-1]["body"].get("text", {}).get("content", "") if welcome else ""
    demo.check(
        bool(welcome) and welcome[-1]["body"]["welcome_code"] == added["welcome_code"],
        "welcomed within the code's 20 s",
    )
    demo.check(
        "晚上好" in text and "静安嘉里店" in text,
        f"the weekend-evening script, with her store: 「{text[:34]}…」",
    )
    customer = added["external_userid"]
    demo.out("   She writes to 微信客服: 「宝宝八个月了，奶粉喝几段呀」")
    await demo.emu.simulate_kf_message("宝宝八个月了，奶粉喝几段呀", external_userid=customer)
    await demo.settle()
    demo.clock.advance(seconds=demo.runtime.settings.tagging.sync_delay_seconds + 1)
    await demo.settle()
    from bot import profile

    found = await profile.load_profile(demo.runtime.sessions, customer, demo.clock.now().date())
    tags = {t.tag for t in found.tags} if found else set()
    demo.check({"宝妈", "奶粉-2段"} <= tags, f"tagged from what she said: {'、'.join(sorted(tags))}")
    marked = [c for c in demo.emu.calls("/externalcontact/mark_tag") if c["errcode"] == 0]
    demo.check(
        bool(marked) and marked[-1]["body"]["userid"] == "zhangmei",
        "the tags reached WeCom on her follow with 张美 (mark_tag), created first where missing",
    )
    if found:
        demo.out("\n" + "\n".join("   " + line for line in profile.render(found).splitlines()))
    return customer


async def _runs(demo: Demo, customer: str) -> list[Enrollment]:
    async with demo.runtime.sessions() as session:
        query = select(Enrollment).where(Enrollment.external_userid == customer).order_by(Enrollment.id)
        return list(await session.scalars(query))


async def _log(demo: Demo, customer: str, since: int = 0) -> list[SopLog]:
    async with demo.runtime.sessions() as session:
        query = (
            select(SopLog).where(SopLog.external_userid == customer, SopLog.id > since).order_by(SopLog.id)
        )
        return list(await session.scalars(query))


async def _sop_until(demo: Demo, customer: str, when: dt.datetime, since: int) -> list[SopLog]:
    """Run the service up to `when` as if it never stopped; print and return the SOP log since `since`."""
    # In half-hour steps: a service that jumped days at once would find its steps late and skip them.
    while demo.clock.now() < when:
        demo.clock.set(min(when, demo.clock.now() + dt.timedelta(minutes=30)))
        await demo.settle()
    lines = await _log(demo, customer, since)
    for line in lines:
        at = dt.datetime.fromtimestamp(line.at, SHANGHAI).strftime("%a %H:%M")
        route = f" via {line.route}" if line.route else ""
        why = f" ({line.reason}: {line.detail})" if line.reason and line.detail else ""
        demo.out(f"   {at}  {line.step_id}: {line.outcome}{route}{why}")
    return lines


async def chapter_sop(demo: Demo, customer: str) -> None:
    """Her first week on the new-contact playbook: quiet hours, a cap, her reply, then 别发了."""
    demo.out("\n7. The new-contact playbook (sop/new_contact.yaml) for 陈女士, on the simulated clock")
    runs = await _runs(demo, customer)
    demo.check(
        "new_contact" in [r.playbook_id for r in runs],
        "she entered stage 加微 and was enrolled in new_contact",
    )
    seen = 0
    lines = await _sop_until(demo, customer, dt.datetime(2026, 11, 28, 22, 0, tzinfo=SHANGHAI), seen)
    demo.check(
        any(x.outcome == "deferred" and x.reason == "quiet_hours" for x in lines),
        "the trial pack, due 22:00, falls in quiet hours and moves to 08:30",
    )
    seen = lines[-1].id if lines else seen
    lines = await _sop_until(demo, customer, dt.datetime(2026, 11, 29, 8, 30, tzinfo=SHANGHAI), seen)
    demo.check(
        any(x.outcome == "sent" and x.step_id == "d0_trial_pack" for x in lines),
        "sent Sunday 08:30 through 微信客服 (she wrote there within 48 h)",
    )
    seen = lines[-1].id if lines else seen
    lines = await _sop_until(demo, customer, dt.datetime(2026, 11, 29, 10, 0, tzinfo=SHANGHAI), seen)
    demo.check(
        any(x.reason == "daily_cap" for x in lines), "day 1's question waits: one push a day is her cap"
    )
    seen = lines[-1].id if lines else seen
    lines = await _sop_until(demo, customer, dt.datetime(2026, 11, 30, 8, 30, tzinfo=SHANGHAI), seen)
    demo.check(
        any(x.outcome == "sent" and x.step_id == "d1_ask_age" for x in lines), "day 1 sent Monday 08:30"
    )
    seen = lines[-1].id if lines else seen
    demo.clock.set(dt.datetime(2026, 11, 30, 9, 10, tzinfo=SHANGHAI))
    demo.out("   Mon 09:10  she replies in 微信客服: 「8个月了」")
    await demo.emu.simulate_kf_message("8个月了", external_userid=customer)
    await demo.settle()
    lines = await _sop_until(demo, customer, dt.datetime(2026, 12, 1, 20, 30, tzinfo=SHANGHAI), seen)
    demo.check(
        any(x.outcome == "branched" and x.reason == "reply" for x in lines)
        and any(x.outcome == "sent" and x.step_id == "d3_member" for x in lines),
        "her reply took the on_reply branch: the member invite on day 3",
    )
    seen = lines[-1].id if lines else seen
    demo.clock.set(dt.datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI))
    demo.out("   Wed 12:00  she writes: 「别发了」")
    before = len(_kf_sends(demo))
    await demo.emu.simulate_kf_message("别发了", external_userid=customer)
    await demo.settle()
    confirmations = [c for c in _kf_sends(demo)[before:] if "退订" in str(c)]
    demo.check(bool(confirmations), "one confirmation, telling her how to undo it")
    lines = await _sop_until(demo, customer, dt.datetime(2026, 12, 5, 10, 0, tzinfo=SHANGHAI), seen)
    runs = [r for r in await _runs(demo, customer) if r.playbook_id == "new_contact"]
    demo.check(
        runs[-1].state == "exited" and not any(x.outcome == "sent" for x in lines),
        "the pushes stop: the run exits (unsubscribed) and day 7 is never sent",
    )


def _hhmmss(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, SHANGHAI).strftime("%H:%M:%S")


async def print_timeline(demo: Demo, customer: str) -> None:
    """The customer's profile and timeline as a guide would read it."""
    async with demo.runtime.sessions() as session:
        row = await session.scalar(select(Customer).where(Customer.external_userid == customer))
        follows = list(await session.scalars(select(Follow).where(Follow.external_userid == customer)))
        entries = list(
            await session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.external_userid == customer)
                .order_by(TimelineEntry.id)
            )
        )
    demo.out(f"\nTimeline of {row.name if row else customer} ({customer})")
    demo.out(
        f"   channel {row.first_state if row else '-'} · guides "
        + ", ".join(f"{f.userid} ({f.status})" for f in follows)
    )
    for entry in entries:
        text = entry.data.get("text") if isinstance(entry.data, dict) else None
        if text and len(text) > 40:
            text = text[:40] + "…"
        demo.out(f"   {_hhmmss(entry.occurred_at)}  {entry.summary}" + (f"：「{text}」" if text else ""))


async def print_calls(demo: Demo) -> None:
    """Every WeCom API call the service made, and every callback the emulator delivered."""
    demo.out("\nWeCom API calls made by Siyu (from the emulator's journal)")
    for call in demo.emu.journal:
        body: Any = call.get("body") or {}
        detail = ""
        if isinstance(body, dict) and body.get("cursor"):
            detail = " cursor=…"
        demo.out(
            f"   #{call['seq']:<2} {call['method']:<4} {call['path']:<42} errcode={call['errcode']}{detail}"
        )
    demo.out("\nCallbacks delivered to Siyu")
    for cb in demo.emu.callbacks:
        demo.out(f"   {cb['app']:<8} {cb['event']:<45} HTTP {cb['attempts']}")


def main() -> None:  # pragma: no cover - `python -m bot.demo` convenience
    """Run the demo with the committed config."""
    import asyncio

    from bot.config import load_settings

    sys.exit(asyncio.run(run_demo(load_settings())))
