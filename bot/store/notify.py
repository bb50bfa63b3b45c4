"""Cross-replica wake-ups on PostgreSQL: NOTIFY when work is committed, LISTEN to wake local workers.

Each replica wakes its own workers in process; NOTIFY lets an idle replica pick up work that a
busy one received. The notification is sent inside the committing transaction, so it is
delivered only if the work was committed. Polling stays as the fallback: a lost listener
connection delays work by one poll interval, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

_LOGGER = logging.getLogger(__name__)

CHANNEL = "siyu_wakeup"


async def notify(session: AsyncSession, queue: str) -> None:
    """Tell every replica that `queue` (inbox, outbox, timers) has work, at commit (PostgreSQL only)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        params = {"channel": CHANNEL, "queue": queue}
        await session.execute(text("SELECT pg_notify(:channel, :queue)"), params)


async def notify_driver(driver: Any, queue: str) -> None:
    """Same as `notify`, on an asyncpg connection outside a transaction."""
    await driver.execute(f"NOTIFY {CHANNEL}, '{queue}'")


class Listener:
    """LISTEN on a dedicated connection; set the matching local event on each notification."""

    def __init__(self, engine: AsyncEngine, wakeups: Mapping[str, asyncio.Event]) -> None:
        self._engine = engine
        self._wakeups = wakeups
        self._conn: AsyncConnection | None = None

    async def start(self) -> bool:
        """Start listening; False (and polling only) when the backend has no LISTEN."""
        if self._engine.dialect.name != "postgresql":
            return False
        try:
            self._conn = await self._engine.connect()
            raw = await self._conn.get_raw_connection()
            await raw.driver_connection.add_listener(CHANNEL, self._on_notify)
        except Exception:  # the service still works by polling
            _LOGGER.warning("LISTEN unavailable; workers poll", exc_info=True)
            await self.stop()
            return False
        return True

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        event = self._wakeups.get(payload)
        if event is not None:
            event.set()

    async def stop(self) -> None:
        """Stop listening and drop the connection (it is not returned to the pool with a listener)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()
