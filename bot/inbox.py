"""Durable inbox: a callback is a row (unique dedup key) before WeCom gets its 200.

`put` inserts if absent and wakes the worker; a WeCom retry hits the unique key and is only
acknowledged. `InboxWorker.run_once` claims the oldest waiting row of each customer (so one
customer's events are handled in order), runs the routers that have not yet succeeded on it,
applies their actions in the same transaction that records which routers are done, and retries
failing routers with backoff until `max_attempts`, after which the row is dead-lettered
(`siyu inbox failed`, `siyu inbox replay ID`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased

from bot import errors, metrics, retry
from bot.clock import Clock
from bot.config import InboxSettings
from bot.effects import Effects
from bot.events import Event
from bot.router import Dispatcher
from bot.store import bulk
from bot.store.db import Sessions
from bot.store.models import InboxRow
from bot.store.sql import claim, insert_ignore, update_by_id
from bot.wecom import callback

_LOGGER = logging.getLogger(__name__)

WAITING = ("pending", "processing")


@dataclass(frozen=True)
class Stored:
    """An event as it goes into the inbox."""

    app: str
    plaintext: str
    event: Event


class Inbox:
    """Insert-if-absent writes, claims, dead letters and replays of inbox rows.

    Callbacks arriving together are written together: `put` queues the row and one writer task
    commits everything queued in a single transaction (group commit), then answers each caller.
    A callback is still acknowledged only after its own row is committed; batching just spends
    one commit on many of them, which is what keeps acks in milliseconds under load.
    """

    def __init__(self, sessions: Sessions, clock: Clock, *, batch_max: int = 500) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._conn: AsyncConnection | None = None
        self._clock = clock
        self._batch_max = batch_max
        self._queued: list[tuple[Stored, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.wakeup = asyncio.Event()

    async def put(self, item: Stored) -> bool:
        """Store one callback durably; False if it was a duplicate. Wakes the worker."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="siyu-inbox-writer")
        # If the caller goes away (WeCom hung up), only its future is cancelled: the writer
        # still commits the row and skips answering it.
        return await future

    async def _write_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[: self._batch_max], self._queued[self._batch_max :]
            try:
                if self._conn is None:
                    # The writer keeps one connection: a pool checkout per batch costs more than the insert.
                    self._conn = await self._engine.connect()
                async with self._sessions.write_lock():
                    inserted = await bulk.insert_inbox_rows(
                        self._conn, self._rows([item for item, _ in batch])
                    )
            except Exception as exc:  # the database is down: every caller answers 500, WeCom retries
                await self._drop_connection()
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if inserted:
                self.wakeup.set()
            for item, future in batch:
                # A key queued twice in one batch is new only for its first caller.
                is_new = item.event.dedup_key in inserted
                inserted.discard(item.event.dedup_key)
                if not future.done():
                    future.set_result(is_new)

    async def close(self) -> None:
        """Finish queued writes and release the writer's connection."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                # Its driver settings were changed for the fast path: discard it, do not pool it.
                await conn.invalidate()
                await conn.close()

    async def put_in(self, session: AsyncSession, items: Sequence[Stored]) -> int:
        """Insert `items` inside the caller's transaction; returns how many were new."""
        if not items:
            return 0
        table = InboxRow.__table__
        stmt = insert_ignore(session, table).returning(table.c.dedup_key)
        result = await session.execute(stmt, self._rows(items))
        return len(result.scalars().all())

    def _rows(self, items: Sequence[Stored]) -> list[dict]:
        """Inbox rows for `items`, one per dedup key (a key queued twice is one row)."""
        now = self._clock.timestamp()
        rows = {}
        for item in items:
            rows.setdefault(
                item.event.dedup_key,
                {
                    "dedup_key": item.event.dedup_key,
                    "app": item.app,
                    "kind": item.event.kind,
                    "route_key": str(item.event.route_key),
                    "partition_key": item.event.partition,
                    "plaintext": item.plaintext,
                    "status": "pending",
                    "attempts": 0,
                    "done_routers": [],
                    "received_at": now,
                    "available_at": now,
                },
            )
        return list(rows.values())

    async def claim(self, limit: int, lease: float) -> list[InboxRow]:
        """Claim the oldest due row of each partition that has nothing earlier in flight."""
        now = self._clock.timestamp()
        earlier = aliased(InboxRow)
        blocked = exists().where(
            and_(
                earlier.partition_key == InboxRow.partition_key,
                earlier.id < InboxRow.id,
                earlier.status.in_(WAITING),
            )
        )
        claimable = or_(
            and_(InboxRow.status == "pending", InboxRow.available_at <= now),
            and_(InboxRow.status == "processing", InboxRow.locked_until < now),
        )
        async with self._sessions.begin() as session:
            candidates = select(InboxRow.id).where(claimable, ~blocked).order_by(InboxRow.id).limit(limit)
            return await claim(
                session, InboxRow, candidates, claimable, status="processing", locked_until=now + lease
            )

    async def failed(self, limit: int = 100) -> list[InboxRow]:
        """Dead-lettered rows, newest first."""
        async with self._sessions() as session:
            query = select(InboxRow).where(InboxRow.status == "failed").order_by(InboxRow.id.desc())
            return list((await session.scalars(query.limit(limit))).all())

    async def replay(self, row_id: int) -> bool:
        """Put a dead-lettered (or done) row back in line; routers that succeeded stay done."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(InboxRow)
                .where(InboxRow.id == row_id, InboxRow.status.in_(("failed", "done")))
                .values(status="pending", attempts=0, available_at=self._clock.timestamp(), locked_until=None)
            )
        if result.rowcount:
            self.wakeup.set()
        return bool(result.rowcount)

    async def stats(self) -> tuple[int, float]:
        """(pending rows, age in seconds of the oldest pending row)."""
        from sqlalchemy import func

        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(InboxRow.received_at)).where(InboxRow.status.in_(WAITING))
                )
            ).one()
        return int(count), (self._clock.timestamp() - oldest) if oldest else 0.0


class InboxWorker:
    """Processes claimed inbox rows through the dispatcher."""

    def __init__(
        self,
        inbox: Inbox,
        sessions: Sessions,
        dispatcher: Dispatcher,
        effects: Effects,
        deps: object,
        clock: Clock,
        settings: InboxSettings,
    ) -> None:
        self._inbox = inbox
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._effects = effects
        self._deps = deps
        self._clock = clock
        self._settings = settings

    async def run_once(self) -> int:
        """Claim and process one batch; returns how many rows were processed."""
        rows = await self._inbox.claim(self._settings.batch_size, self._settings.lease_seconds)
        if not rows:
            return 0
        # Rows of one batch belong to different customers: decide concurrently, then commit every
        # row's effects and new state in one transaction (one commit instead of one per event).
        outcomes = await asyncio.gather(*(self.decide(row) for row in rows))
        try:
            await self._commit(outcomes)
        except Exception:
            # One row's effects broke the shared transaction: commit row by row so the others land
            # and only the bad one is retried.
            _LOGGER.warning("batch commit failed; committing rows one by one", exc_info=True)
            for outcome in outcomes:
                try:
                    await self._commit([outcome])
                except Exception as exc:
                    await self._commit([self._commit_failed(outcome, exc)])
        for outcome in outcomes:
            metrics.INBOX_PROCESSED.labels(outcome.metric).inc()
        return len(rows)

    async def process(self, row: InboxRow) -> None:
        """Run one row through the routers and record the outcome."""
        outcome = await self.decide(row)
        await self._commit([outcome])
        metrics.INBOX_PROCESSED.labels(outcome.metric).inc()

    async def decide(self, row: InboxRow) -> Finished:
        """Run the routers that have not yet succeeded on `row`; returns what to commit."""
        try:
            event = callback.parse(row.app, row.plaintext)
        except errors.CallbackError as exc:
            return Finished(row, [], "failed", {"status": "failed", "last_error": f"unparsable: {exc}"})
        outcome = await self._dispatcher.dispatch(event, self._deps, skip=row.done_routers or ())
        if outcome.unhandled:
            _LOGGER.info(
                "no handler for event", extra={"route_key": str(event.route_key), "inbox_id": row.id}
            )
        actions = [a for acts in outcome.actions.values() for a in acts]
        done = [*(row.done_routers or []), *outcome.actions]
        source = event.dedup_key
        if not outcome.failed:
            metric = "unhandled" if outcome.unhandled else "done"
            return Finished(row, actions, metric, {"status": "done", "done_routers": done}, source)
        error = "; ".join(f"{name}: {why}" for name, why in outcome.failed.items())
        return self._failed(row, actions, source, error, done_routers=done)

    def _commit_failed(self, outcome: Finished, exc: Exception) -> Finished:
        """The row's effects cannot be written: retry it later without them (or dead-letter it)."""
        _LOGGER.error(
            "inbox row effects failed", extra={"inbox_id": outcome.row.id, "error": type(exc).__name__}
        )
        return self._failed(outcome.row, [], outcome.source, f"effects failed: {type(exc).__name__}")

    def _failed(self, row: InboxRow, actions: list, source: str, error: str, **values: object) -> Finished:
        """Retry `row` after a backoff, or dead-letter it once it has used up its attempts."""
        attempts = row.attempts + 1
        values.update(attempts=attempts, last_error=error)
        if attempts >= self._settings.max_attempts:
            _LOGGER.error("inbox row dead-lettered", extra={"inbox_id": row.id})
            return Finished(row, actions, "failed", {**values, "status": "failed"}, source)
        delay = retry.backoff_delay(
            attempts, self._settings.backoff_base_seconds, self._settings.backoff_max_seconds
        )
        values.update(status="pending", available_at=self._clock.timestamp() + delay)
        return Finished(row, actions, "retried", values, source)

    async def _commit(self, outcomes: Sequence[Finished]) -> None:
        """Apply the outcomes' effects and the rows' new state in one transaction."""
        now = self._clock.timestamp()
        changes = []
        for outcome in outcomes:
            values = {"locked_until": None, "last_error": None, **outcome.values}
            if values["status"] in ("done", "failed"):
                values["processed_at"] = now
            changes.append((outcome.row.id, values))
        async with self._sessions.begin() as session:
            # Effects and the rows' new state commit together: a crash replays whole rows.
            await self._effects.apply_batch(
                session, [(o.actions, o.source or o.row.dedup_key) for o in outcomes]
            )
            await update_by_id(session, InboxRow.__table__, changes)
        self._effects.after_commit(a for o in outcomes for a in o.actions)


@dataclass(frozen=True)
class Finished:
    """What processing a row decided: its actions and the row's new state."""

    row: InboxRow
    actions: list
    metric: str
    values: dict
    source: str = ""
