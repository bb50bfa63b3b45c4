"""The service's parts wired together: storage, KV, client, inbox, outbox, scheduler, workers.

`Runtime.start` builds them from settings; the aiohttp app holds one in a cleanup context.
`drain()` runs the workers until nothing is left (tests and the demo, with a FrozenClock);
`run_workers()` is the serve loop, the only place that waits on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import archive, channel_sync, errors, kf, lifecycle, mass_tasks, metrics
from bot.archive import POLL_TIMER, Archive, create_archive, on_archive_poll
from bot.clock import Clock
from bot.config import APP_NAMES, Settings
from bot.content import ContentStore
from bot.deps import Deps
from bot.effects import Effects
from bot.inbox import Inbox, InboxWorker
from bot.kv import KV, create_kv
from bot.outbox import OutboxSender
from bot.playbooks import STAGES_FILE, PlaybookStore
from bot.reloading import keep_refreshing
from bot.router import Dispatcher, Router
from bot.scheduler import Scheduler
from bot.senders import SendContext
from bot.sop_runner import SopRunner, Texts
from bot.store import db, housekeeping
from bot.store.db import Sessions
from bot.store.models import InboxRow, OutboxRow, TimerRow
from bot.store.notify import Listener
from bot.store.readers import CustomerNames, CustomerTags, KfSessions, LifecycleReader, WelcomeHistories
from bot.wecom.client import WeComClient
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.tokens import TokenCache

_LOGGER = logging.getLogger(__name__)


def build_faq_index(snapshot):  # type: ignore[no-untyped-def]
    """Build what capabilities precompute per library version, in the content store's thread."""
    from handlers import tagging as tagging_handler
    from handlers.faq import build_faq_index as build

    tagging_handler.prepare_rules(snapshot)  # compile tagging.yaml now, not on the first message
    return build(snapshot)


def default_routers() -> tuple[Router, ...]:
    """Core plumbing first, then the capabilities in `handlers.ROUTERS` order."""
    from handlers import ROUTERS

    return (kf.router, archive.router, *ROUTERS)


@dataclass
class Runtime:
    """Everything a running Siyu process holds."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: Sessions
    kv: KV
    http: aiohttp.ClientSession
    client: WeComClient
    cryptos: dict[str, CallbackCrypto]
    dispatcher: Dispatcher
    effects: Effects
    inbox: Inbox
    worker: InboxWorker
    outbox: OutboxSender
    scheduler: Scheduler
    deps: Deps
    content: ContentStore
    runner: SopRunner
    playbooks: PlaybookStore
    stages: StagesFile
    _owns_http: bool = False
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _progressed: asyncio.Event = field(default_factory=asyncio.Event)
    _listener: Listener | None = None
    archive: Any = None
    """The chat archive (`bot.archive.Archive`), when configured."""

    @classmethod
    async def start(
        cls,
        settings: Settings,
        clock: Clock,
        *,
        http: aiohttp.ClientSession | None = None,
        routers: Iterable[Router] | None = None,
        kv: KV | None = None,
    ) -> Runtime:
        """Open connections, check the schema and build every part."""
        engine = db.create_engine(
            settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size
        )
        try:
            embedded = db.is_sqlite(settings.database.url)
            await db.prepare(engine, auto_upgrade=embedded)
            if embedded:
                await _release_leases(engine)
        except BaseException:
            await engine.dispose()
            raise
        sessions = db.sessionmaker(engine)
        kv = kv or create_kv(settings, clock)
        owns_http = http is None
        http = http or aiohttp.ClientSession()
        tokens = TokenCache(kv, clock, margin=settings.wecom.token_refresh_margin_seconds)
        client = WeComClient.from_settings(settings, http, tokens, kv, clock)
        corp_id = settings.wecom.corp_id
        cryptos = {
            name: CallbackCrypto(
                settings.app(name).callback_token.get_secret_value(),
                settings.app(name).encoding_aes_key.get_secret_value(),
                # The smart robot's receive id is empty (https://developer.work.weixin.qq.com/document/path/101033).
                "" if name == "robot" else corp_id,
            )
            for name in APP_NAMES
        }
        content = ContentStore(settings, clock, sessions, index_builder=build_faq_index)
        try:
            await content.start()  # invalid content: refuse to serve
        except BaseException:
            await engine.dispose()
            raise
        stages = StagesFile(Path(settings.sop.dir) / STAGES_FILE)
        playbooks = PlaybookStore(
            settings.sop.dir, content_snapshot=lambda: content.current, stages=lambda: lifecycle.STAGES
        )
        try:
            stages.load()
            await playbooks.start()  # invalid playbooks: refuse to serve, like invalid content
        except BaseException:
            await engine.dispose()
            raise
        deps = Deps(
            clock=clock,
            settings=settings,
            content=lambda: content.current,
            kf_sessions=KfSessions(sessions),
            customer_tags=CustomerTags(sessions),
            welcome_history=WelcomeHistories(sessions),
            lifecycle=LifecycleReader(sessions),
            playbooks=lambda: playbooks.current,
            stages=lambda: stages.current,
        )
        dispatcher = Dispatcher(default_routers() if routers is None else routers)
        effects = Effects(clock)
        inbox = Inbox(sessions, clock)
        worker = InboxWorker(inbox, sessions, dispatcher, effects, deps, clock, settings.inbox)
        archive: Archive | None = None
        if settings.archive.enabled:
            # The SDK library is loaded only here, only for `archive.adapter: sdk`.
            archive = create_archive(settings, http)
        context = SendContext(
            client=client,
            sessions=sessions,
            inbox=inbox,
            clock=clock,
            kv=kv,
            media_cache_seconds=settings.welcome.media_cache_seconds,
            archive=archive,
            archive_batch=settings.archive.batch_limit,
            sop=settings.sop,
            names=CustomerNames(sessions),
        )
        outbox = OutboxSender(sessions, effects, context, clock, settings.outbox)
        scheduler = Scheduler(sessions, effects, clock, settings.scheduler, deps)
        scheduler.register(channel_sync.TIMER_KIND, channel_sync.on_channels_sync_timer)
        scheduler.register(POLL_TIMER, on_archive_poll)
        from handlers import tagging  # capabilities import bot modules: imported when wiring, not at load

        scheduler.register(tagging.SYNC_TIMER, tagging.on_tags_sync)
        from handlers import lifecycle as lifecycle_handler
        from handlers import sop

        scheduler.register(lifecycle_handler.STAGE_CHECK, lifecycle_handler.on_stage_check)
        scheduler.register(sop.SOP_DATE, sop.on_date)
        scheduler.register(mass_tasks.TIMER_KIND, mass_tasks.on_check_timer)
        runner = SopRunner(
            sessions,
            effects,
            clock,
            settings,
            playbooks=lambda: playbooks.current,
            texts=lambda: sop_texts(content.current),
            content=lambda: content.current,
        )
        return cls(
            settings=settings,
            clock=clock,
            engine=engine,
            sessions=sessions,
            kv=kv,
            http=http,
            client=client,
            cryptos=cryptos,
            dispatcher=dispatcher,
            effects=effects,
            inbox=inbox,
            worker=worker,
            outbox=outbox,
            scheduler=scheduler,
            deps=deps,
            content=content,
            runner=runner,
            playbooks=playbooks,
            stages=stages,
            _owns_http=owns_http,
            archive=archive,
        )

    async def drain(self, max_rounds: int = 1000) -> int:
        """Run inbox, outbox and timers until none has due work; returns rows handled."""
        total = 0
        for _ in range(max_rounds):
            done = await self.worker.run_once()
            done += await self.outbox.run_once()
            done += await self.scheduler.run_due()
            done += await self.runner.run_due()
            total += done
            if not done:
                return total
        raise RuntimeError("drain did not settle")

    async def start_workers(self) -> None:
        """Start the background loops (serve mode), and LISTEN for other replicas' work."""
        if (Path(self.settings.content.dir) / "channels.yaml").exists():
            # Keyed by day: every replica may schedule it at start; the first insert wins.
            first = channel_sync.schedule_next_sync(self.clock.now(), self.settings)
            async with self.sessions.begin() as session:
                await self.effects.apply(session, [first], source="startup")
        if self.settings.archive.enabled:
            # Keyed by interval slot: every replica may schedule it at start; the first insert wins.
            poll = archive.schedule_next_poll(self.clock.timestamp(), self.settings)
            async with self.sessions.begin() as session:
                await self.effects.apply(session, [poll], source="startup")
        self._listener = Listener(
            self.engine,
            {
                "inbox": self.inbox.wakeup,
                "outbox": self.outbox.wakeup,
                "timers": self.scheduler.wakeup,
                "sop": self.runner.wakeup,
            },
        )
        await self._listener.start()
        loops = (
            (
                "inbox",
                self.worker.run_once,
                self.inbox.wakeup,
                self.settings.inbox.poll_interval_seconds,
                None,
            ),
            (
                "outbox",
                self.outbox.run_once,
                self.outbox.wakeup,
                self.settings.outbox.poll_interval_seconds,
                self.outbox.next_due,
            ),
            (
                "scheduler",
                self.scheduler.run_due,
                self.scheduler.wakeup,
                self.settings.scheduler.poll_interval_seconds,
                self.scheduler.next_due,
            ),
            (
                "sop",
                self.runner.run_due,
                self.runner.wakeup,
                self.settings.sop.poll_interval_seconds,
                self.runner.next_due,
            ),
        )
        # More than one inbox (or SOP) loop overlaps one batch's database round trips with the next
        # batch's decisions; claims never give two loops rows of one customer (as across replicas).
        extra_inbox = tuple(
            (
                f"inbox-{i}",
                self.worker.run_once,
                self.inbox.wakeup,
                self.settings.inbox.poll_interval_seconds,
                None,
            )
            for i in range(2, self.settings.inbox.workers + 1)
        )
        # On SQLite the loops would only take turns at the one writer, and wake together.
        sop_loops = self.settings.sop.workers if self.engine.dialect.name != "sqlite" else 1
        extra_sop = tuple(
            (
                f"sop-{i}",
                self.runner.run_due,
                self.runner.wakeup,
                self.settings.sop.poll_interval_seconds,
                self.runner.next_due,
            )
            for i in range(2, sop_loops + 1)
        )
        for name, step, wakeup, interval, next_due in (*loops, *extra_inbox, *extra_sop):
            task = asyncio.create_task(
                self._loop(name, step, wakeup, interval, next_due), name=f"siyu-{name}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        background = (
            ("gauges", self._gauges()),
            ("housekeeping", self._housekeeping()),
            ("content", self.content.run(self._stopping)),
            ("playbooks", self._watch_sop()),
        )
        for name, coro in background:
            task = asyncio.create_task(coro, name=f"siyu-{name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _loop(self, name, step, wakeup: asyncio.Event, interval: float, next_due) -> None:  # type: ignore[no-untyped-def]
        while not self._stopping.is_set():
            wakeup.clear()
            try:
                handled = await step()
            except Exception:
                _LOGGER.exception("worker round failed", extra={"worker": name})
                handled = 0
            if handled:
                self._progressed.set()
                continue
            if self._stopping.is_set():
                continue
            timeout = interval
            if next_due is not None:
                with contextlib.suppress(Exception):
                    due = await next_due()
                    if due is not None:
                        timeout = max(0.0, min(interval, due - self.clock.timestamp()))
            await _wait(wakeup, self._stopping, timeout)

    async def wait_until(self, predicate: Callable[[], Awaitable[bool]], seconds: float) -> None:
        """Wait (serve mode) until `predicate()` holds, re-checking after each worker round."""
        async with asyncio.timeout(seconds):
            while True:
                self._progressed.clear()
                if await predicate():
                    return
                await self._progressed.wait()

    async def _gauges(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                pending, lag = await self.inbox.stats()
                metrics.INBOX_PENDING.set(pending)
                metrics.INBOX_LAG.set(lag)
            await _wait(self._stopping, self._stopping, 5.0)

    async def _housekeeping(self) -> None:
        while not self._stopping.is_set():
            try:
                await housekeeping.purge(self.sessions, self.clock.timestamp(), self.settings)
            except Exception:  # retried next round; nothing depends on it
                _LOGGER.warning("housekeeping failed", exc_info=True)
            await _wait(self._stopping, self._stopping, housekeeping.INTERVAL_SECONDS)

    async def _watch_sop(self) -> None:
        """Reload stages.yaml (off the event loop), then the playbooks; each keeps its last good version."""

        async def refresh() -> None:
            await asyncio.to_thread(self.stages.refresh)
            await self.playbooks.refresh()

        interval = self.settings.content.reload_interval_seconds
        await keep_refreshing(
            self._stopping, interval, refresh, "sop", lambda: self.playbooks.current.digest[:12]
        )

    async def stop(self) -> None:
        """Let in-flight rounds finish (within the shutdown timeout), then close everything."""
        self._stopping.set()
        if self._listener is not None:
            await self._listener.stop()
        for event in (self.inbox.wakeup, self.outbox.wakeup, self.scheduler.wakeup, self.runner.wakeup):
            event.set()
        if self._tasks:
            _done, pending = await asyncio.wait(
                set(self._tasks), timeout=self.settings.service.shutdown_timeout_seconds
            )
            for task in pending:
                # Whatever was cut short is still a claimed row; its lease expires and it runs again.
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.inbox.close()
        if self.archive is not None:
            await self.archive.close()
        if self._owns_http:
            await self.http.close()
        await self.kv.close()
        await self.engine.dispose()


class StagesFile:
    """sop/stages.yaml: loaded at start (invalid: refuse to serve), then the last good version serves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._current: lifecycle.StagesConfig | None = None
        self._mtime = -1.0

    @property
    def current(self) -> lifecycle.StagesConfig:
        """The last good stage rules (the defaults when there is no stages.yaml)."""
        return self._current or lifecycle.StagesConfig()

    def load(self) -> None:
        """Load the file; raises ContentErrors when it is invalid."""
        if not self.path.exists():
            self._current = lifecycle.StagesConfig()
            return
        self._mtime = self.path.stat().st_mtime
        self._current = lifecycle.load_stages(self.path)

    def refresh(self) -> None:
        """Reload after a change; an invalid edit is logged and the last good rules keep serving."""
        if not self.path.exists() or self.path.stat().st_mtime == self._mtime:
            return
        try:
            self.load()
        except errors.ContentErrors as exc:
            self._mtime = self.path.stat().st_mtime
            _LOGGER.warning(
                "stages.yaml rejected, still serving the last good rules\n%s", "\n".join(map(str, exc.errors))
            )


def sop_texts(snapshot: Any) -> Texts:
    """Brand and guide names for SOP content variables, from the content library's welcome.yaml."""
    from bot.welcome_rules import rules_from_files

    rules = rules_from_files(snapshot.files) if snapshot is not None else None
    brand = (rules.brand if rules is not None else "") or snapshot.faq.brand if snapshot is not None else ""
    guides = {g: (v.name, v.store) for g, v in rules.guides.items()} if rules is not None else {}
    return Texts(brand, guides)


async def _wait(event: asyncio.Event, stopping: asyncio.Event, seconds: float) -> None:
    """Wait until `event` or `stopping` is set, or `seconds` pass (the serve loop's only wait)."""
    waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(stopping.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _release_leases(engine: AsyncEngine) -> None:
    """Embedded SQLite serves one process: rows it had claimed before a crash are free again now."""
    async with engine.begin() as conn:
        await conn.execute(
            update(InboxRow)
            .where(InboxRow.status == "processing")
            .values(status="pending", locked_until=None)
        )
        await conn.execute(
            update(OutboxRow).where(OutboxRow.status == "sending").values(status="pending", locked_until=None)
        )
        await conn.execute(
            update(TimerRow).where(TimerRow.status == "firing").values(status="pending", locked_until=None)
        )
