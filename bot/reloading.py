"""The loop behind every "reload on change, keep the last good version" store (content, playbooks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

_LOGGER = logging.getLogger(__name__)


async def keep_refreshing(
    stopping: asyncio.Event,
    interval_seconds: float,
    refresh: Callable[[], Awaitable[object]],
    what: str,
    serving: Callable[[], str],
) -> None:
    """Call `refresh()` every `interval_seconds` until `stopping` is set.

    A refresh that raises (the database is down, a file vanished) is logged once when checks start
    failing and once when they work again; the store keeps serving its last good version.
    """
    failing = False
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval_seconds)
            return
        except TimeoutError:
            pass
        try:
            await refresh()
        except Exception:
            if not failing:
                _LOGGER.exception("%s check failed; still serving %s", what, serving())
            failing = True
        else:
            if failing:
                _LOGGER.info("%s checks work again", what)
            failing = False
