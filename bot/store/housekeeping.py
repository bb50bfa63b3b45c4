"""Retention: finished inbox, outbox and timer rows are deleted after `retention_days`.

Dead letters (failed rows) are kept until ops replay or clear them; the customer timeline is
the lasting record, not the queues. The dedup window only needs WeCom's retry period (minutes).
"""

from __future__ import annotations

from sqlalchemy import delete

from bot.config import Settings
from bot.store.models import InboxRow, OutboxRow, TimerRow

INTERVAL_SECONDS = 600.0


async def purge(sessions, now: float, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    """Delete finished queue rows older than the retention period; returns how many."""
    cutoff = now - settings.inbox.retention_days * 86400
    deleted = 0
    async with sessions.begin() as session:
        for stmt in (
            delete(InboxRow).where(InboxRow.status == "done", InboxRow.processed_at < cutoff),
            delete(OutboxRow).where(OutboxRow.status == "sent", OutboxRow.sent_at < cutoff),
            delete(TimerRow).where(TimerRow.status.in_(("done", "cancelled")), TimerRow.due_at < cutoff),
        ):
            deleted += (await session.execute(stmt)).rowcount or 0
    return deleted
