"""Durable outbox: every WeCom call a handler decided is a row with a unique idempotency key.

The row is written in the same transaction as the decision, so a crash between deciding and
sending never forgets a send, and the unique key means a replayed decision never adds a second
one. `OutboxSender.run_once` claims due rows (the earliest of each customer, so one customer's
messages stay in order; SKIP LOCKED on PostgreSQL), sends them through the client, retries
transient failures with backoff and jitter inside the action's deadline (a WelcomeCode lives
20 s), and records permanent failures with their errcode (`siyu outbox failed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from bot import actions as act
from bot import errors, metrics, retry
from bot.clock import Clock
from bot.config import OutboxSettings
from bot.effects import Effects
from bot.senders import SENDERS, SendContext
from bot.store.db import Sessions
from bot.store.models import OutboxRow
from bot.store.sql import claim, update_by_id

_LOGGER = logging.getLogger(__name__)

IN_FLIGHT = ("pending", "sending")


class OutboxSender:
    """Claims and performs outbox rows."""

    def __init__(
        self,
        sessions: Sessions,
        effects: Effects,
        context: SendContext,
        clock: Clock,
        settings: OutboxSettings,
    ) -> None:
        self._sessions = sessions
        self._effects = effects
        self._ctx = context
        self._clock = clock
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)

    @property
    def wakeup(self) -> asyncio.Event:
        """Set when new rows were committed."""
        return self._effects.outbox_wakeup

    async def claim(self, limit: int) -> list[OutboxRow]:
        """Claim due rows: the earliest of each customer, plus rows whose sender vanished."""
        now = self._clock.timestamp()
        earlier = aliased(OutboxRow)
        blocked = exists().where(
            and_(
                OutboxRow.partition_key != "",
                earlier.partition_key == OutboxRow.partition_key,
                earlier.id < OutboxRow.id,
                earlier.status.in_(IN_FLIGHT),
            )
        )
        claimable = or_(
            and_(OutboxRow.status == "pending", OutboxRow.available_at <= now),
            and_(OutboxRow.status == "sending", OutboxRow.locked_until < now),
        )
        async with self._sessions.begin() as session:
            # Sends with a deadline first, earliest deadline first (a WelcomeCode lives 20 s); the
            # rest in the order they were decided.
            order = (OutboxRow.deadline_at.is_(None), OutboxRow.deadline_at, OutboxRow.id)
            candidates = select(OutboxRow.id).where(claimable, ~blocked).order_by(*order).limit(limit)
            lease = now + self._settings.lease_seconds
            return await claim(
                session, OutboxRow, candidates, claimable, status="sending", locked_until=lease
            )

    async def run_once(self) -> int:
        """Claim and send one batch; returns how many rows were handled."""
        rows = await self.claim(self._settings.batch_size)
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._guarded(row) for row in rows))
        # One transaction records the whole batch; if it breaks, record row by row so one bad
        # follow-up cannot hold back the others (their sends already happened).
        try:
            await self._record_all(outcomes)
        except Exception:
            _LOGGER.warning("batch record failed; recording rows one by one", exc_info=True)
            for outcome in outcomes:
                try:
                    await self._record_all([outcome])
                except Exception:
                    # Without its follow-up: the send is recorded, what it should have noted is lost.
                    _LOGGER.exception("outbox follow-up failed", extra={"outbox_id": outcome.row.id})
                    await self._record_all([Recorded(outcome.row, [], outcome.values)])
        return len(rows)

    async def next_due(self) -> float | None:
        """Epoch seconds of the next pending row (for the serve loop's wait)."""
        from sqlalchemy import func

        async with self._sessions() as session:
            return await session.scalar(
                select(func.min(OutboxRow.available_at)).where(OutboxRow.status == "pending")
            )

    async def _guarded(self, row: OutboxRow) -> Recorded:
        async with self._slots:
            return await self.attempt(row)

    async def send(self, row: OutboxRow) -> None:
        """Send one claimed row and record the outcome."""
        await self._record_all([await self.attempt(row)])

    async def attempt(self, row: OutboxRow) -> Recorded:
        """Send one claimed row; returns what to record (the caller commits it)."""
        action = act.rebuild(row.kind, row.payload)
        now = self._clock.timestamp()
        attempt = row.attempts + 1
        if row.deadline_at is not None and now >= row.deadline_at:
            # Keep the errcode that held it back (if any): that is why the window was missed.
            reason = "deadline passed before the send (window closed)"
            return self._fail(row, action, attempt, row.last_errcode, reason)
        try:
            sent = await SENDERS[row.kind](self._ctx, action)
        except errors.Permanent as exc:
            return self._fail(row, action, attempt, exc.errcode, exc.errmsg or str(exc))
        except Exception as exc:  # transient WeCom errors, timeouts, lost connections, bugs
            return self._retry_or_fail(row, action, attempt, exc)
        metrics.OUTBOX.labels(row.kind, "sent").inc()
        values = {
            "status": "sent",
            "attempts": attempt,
            "sent_at": self._clock.timestamp(),
            "result": sent.result,
            "last_errcode": 0,
        }
        return Recorded(row, sent.follow_up, values)

    async def _record_all(self, outcomes: Sequence[Recorded]) -> None:
        """Release the rows with their new state, applying their follow-ups in the same transaction."""
        changes = [(o.row.id, {"locked_until": None, **o.values}) for o in outcomes]
        async with self._sessions.begin() as session:
            await self._effects.apply_batch(
                session, [(o.follow_up, f"outbox:{o.row.idem_key}") for o in outcomes]
            )
            await update_by_id(session, OutboxRow.__table__, changes)
        self._effects.after_commit(a for o in outcomes for a in o.follow_up)
        if any(o.values.get("status") == "pending" for o in outcomes):
            self.wakeup.set()

    def _retry_or_fail(
        self, row: OutboxRow, action: act.WeComAction, attempt: int, exc: Exception
    ) -> Recorded:
        policy = self._settings.retry
        errcode = getattr(exc, "errcode", None)
        reason = str(exc) or type(exc).__name__
        if not isinstance(exc, errors.WeComError) and not retry.is_retryable(exc):
            _LOGGER.exception("sender crashed", extra={"outbox_id": row.id, "kind": row.kind})
        run_at = retry.next_attempt_at(
            exc if retry.is_retryable(exc) else errors.Transient(-1, reason),
            attempt,
            now=self._clock.timestamp(),
            max_attempts=policy.max_attempts,
            base=policy.base_seconds,
            cap=policy.max_seconds,
            deadline=row.deadline_at,
        )
        if run_at is None:
            return self._fail(row, action, attempt, errcode, f"gave up after {attempt} attempts: {reason}")
        metrics.OUTBOX.labels(row.kind, "retried").inc()
        _LOGGER.info(
            "send will be retried",
            extra={"outbox_id": row.id, "kind": row.kind, "errcode": errcode, "attempt": attempt},
        )
        values = {
            "status": "pending",
            "attempts": attempt,
            "available_at": run_at,
            "last_errcode": errcode,
            "last_error": reason[:1000],
        }
        return Recorded(row, [], values)

    def _fail(
        self, row: OutboxRow, action: act.WeComAction, attempt: int, errcode: int | None, reason: str
    ) -> Recorded:
        now = self._clock.timestamp()
        follow_up: list[act.Action] = []
        customer = getattr(action, "external_userid", "")
        if customer and row.kind in _KIND_NAMES:  # sends a guide would want to know failed
            follow_up.append(
                act.RecordTimeline(
                    customer,
                    "send_failed",
                    f"{_KIND_NAMES.get(row.kind, row.kind)}未能发送（errcode {errcode}）"
                    if errcode is not None
                    else f"{_KIND_NAMES.get(row.kind, row.kind)}未能发送",
                    now,
                    f"failed:{row.idem_key}",
                    {"kind": row.kind, "errcode": errcode, "reason": reason[:300]},
                )
            )
        metrics.OUTBOX.labels(row.kind, "failed").inc()
        _LOGGER.warning(
            "send failed permanently", extra={"outbox_id": row.id, "kind": row.kind, "errcode": errcode}
        )
        values = {
            "status": "failed",
            "attempts": attempt,
            "last_errcode": errcode,
            "last_error": reason[:1000],
        }
        return Recorded(row, follow_up, values)


@dataclass(frozen=True)
class Recorded:
    """The outcome of one send attempt: the row's new state and the actions it leads to."""

    row: OutboxRow
    follow_up: list[act.Action]
    values: dict[str, object]


_KIND_NAMES = {
    "send_welcome": "欢迎语",
    "kf_send_text": "微信客服回复",
    "kf_send_menu": "微信客服问题菜单",
    "kf_send_on_event": "微信客服欢迎语",
    "kf_handoff": "转人工",
    "mark_tags": "客户标签",
    "create_mass_task": "SOP 群发任务",
    "notify_staff": "导购提醒",
}


async def failed_rows(sessions: Sessions, limit: int = 100) -> list[OutboxRow]:
    """Sends that failed for good, newest first."""
    async with sessions() as session:
        query = (
            select(OutboxRow).where(OutboxRow.status == "failed").order_by(OutboxRow.id.desc()).limit(limit)
        )
        return list((await session.scalars(query)).all())


async def retry_row(sessions: Sessions, row_id: int, now: float) -> bool:
    """Put a failed send back in line (a WelcomeCode past its window will fail again, on purpose)."""
    async with sessions.begin() as session:
        result = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "failed")
            .values(status="pending", attempts=0, available_at=now, locked_until=None)
        )
    return bool(result.rowcount)
