"""Durable timers: rows with a unique key and a due time, fired once by whichever replica claims them.

Features register a handler per timer kind (SOP steps, flash-group phases); `run_due(now)` claims
due timers (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never fire one twice), runs the
handler, and applies its actions in the transaction that marks the timer done. A failing handler
is retried with backoff and the timer dead-lettered after `max_attempts`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from bot import errors, metrics, retry
from bot.actions import Action
from bot.clock import Clock
from bot.config import SchedulerSettings
from bot.effects import Effects
from bot.store.db import Sessions
from bot.store.models import TimerRow
from bot.store.sql import claim

_LOGGER = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Timer:
    """A due timer as handlers see it."""

    key: str
    kind: str
    due_at: float
    payload: dict[str, Any]


TimerHandler = Callable[[Timer, Any], "Sequence[Action] | Awaitable[Sequence[Action]]"]


class Scheduler:
    """Claims due timers and turns them into actions."""

    def __init__(
        self,
        sessions: Sessions,
        effects: Effects,
        clock: Clock,
        settings: SchedulerSettings,
        deps: Any,
    ) -> None:
        self._sessions = sessions
        self._effects = effects
        self._clock = clock
        self._settings = settings
        self._deps = deps
        self._handlers: dict[str, TimerHandler] = {}

    @property
    def wakeup(self) -> Any:
        """Set when a new timer was committed."""
        return self._effects.timer_wakeup

    def register(self, kind: str, handler: TimerHandler) -> None:
        """Handle timers of `kind` with `handler`; a kind has one handler."""
        if kind in self._handlers:
            raise errors.ConfigError(f"timer kind {kind!r} has a handler already")
        self._handlers[kind] = handler

    async def claim(self, now: float, limit: int) -> list[TimerRow]:
        """Claim due timers (and ones whose claimer vanished)."""
        claimable = or_(
            and_(TimerRow.status == "pending", TimerRow.due_at <= now),
            and_(TimerRow.status == "firing", TimerRow.locked_until < now),
        )
        async with self._sessions.begin() as session:
            candidates = (
                select(TimerRow.id).where(claimable).order_by(TimerRow.due_at, TimerRow.id).limit(limit)
            )
            lease = now + self._settings.lease_seconds
            return await claim(session, TimerRow, candidates, claimable, status="firing", locked_until=lease)

    async def run_due(self, now: float | None = None) -> int:
        """Fire every timer due at `now` (default: the clock); returns how many fired."""
        now = self._clock.timestamp() if now is None else now
        fired = 0
        while rows := await self.claim(now, self._settings.batch_size):
            for row in rows:
                await self._fire(row, now)
                fired += 1
        return fired

    async def next_due(self) -> float | None:
        """Epoch seconds of the earliest pending timer."""
        async with self._sessions() as session:
            return await session.scalar(select(func.min(TimerRow.due_at)).where(TimerRow.status == "pending"))

    async def _fire(self, row: TimerRow, now: float) -> None:
        timer = Timer(row.key, row.kind, row.due_at, dict(row.payload or {}))
        handler = self._handlers.get(row.kind)
        try:
            if handler is None:
                raise errors.ConfigError(f"no handler for timer kind {row.kind!r}")
            result = handler(timer, self._deps)
            if inspect.isawaitable(result):
                result = await result
            actions = list(result or ())
        except Exception as exc:
            await self._failed(row, now, exc)
            return
        async with self._sessions.begin() as session:
            await self._effects.apply(session, actions, source=f"timer:{row.key}")
            await session.execute(
                update(TimerRow)
                .where(TimerRow.id == row.id)
                .values(status="done", fired_at=now, locked_until=None, attempts=row.attempts + 1)
            )
        self._effects.after_commit(actions)
        metrics.TIMERS_FIRED.labels(row.kind).inc()

    async def _failed(self, row: TimerRow, now: float, exc: Exception) -> None:
        attempts = row.attempts + 1
        _LOGGER.exception("timer handler failed", extra={"timer": row.key, "attempt": attempts})
        values: dict[str, Any] = {"attempts": attempts, "locked_until": None, "last_error": f"{exc!r}"[:1000]}
        if attempts >= MAX_ATTEMPTS:
            values["status"] = "failed"
        else:
            values["status"] = "pending"
            values["due_at"] = now + retry.backoff_delay(attempts, 1.0, 300.0)
        async with self._sessions.begin() as session:
            await session.execute(update(TimerRow).where(TimerRow.id == row.id).values(**values))
