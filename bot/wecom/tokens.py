"""Access-token cache: refreshed ahead of expiry, fetched once per burst in process and across replicas.

A token lives in the KV as JSON `{token, expires_at, refresh_at}` (wall-clock seconds, comparable
between replicas) with a KV TTL of `expires_in`. WeCom limits gettoken calls and may revoke tokens
early (https://developer.work.weixin.qq.com/document/path/91039), so a burst of callers, or of
42001 answers, must lead to one fetch: an `asyncio.Lock` per app with a second check inside, then a
KV lock with a re-read from the KV for other replicas. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock
from bot.kv import KV

_LOGGER = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[tuple[str, int]]]


class TokenCache:
    """Per-app access tokens shared through a KV; `fetch` returns `(access_token, expires_in)`."""

    def __init__(
        self, kv: KV, clock: Clock, *, margin: float, lock_ttl: float = 30.0, lock_wait: float = 15.0
    ) -> None:
        self._kv = kv
        self._clock = clock
        self._margin = margin
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, app_key: str, fetch: Fetch) -> str:
        """A token for `app_key` that is not due for refresh; calls `fetch` at most once per burst."""
        token = await self._fresh(app_key)
        if token is not None:
            return token
        async with self._locks.setdefault(app_key, asyncio.Lock()):
            # Second check: whoever held the lock before us may have just stored a token.
            token = await self._fresh(app_key)
            if token is not None:
                return token
            async with self._kv.lock(f"token:{app_key}", ttl=self._lock_ttl, wait=self._lock_wait):
                # Another replica may have refreshed while we waited for its lock.
                token = await self._fresh(app_key)
                if token is not None:
                    return token
                token, expires_in = await fetch()
                await self._store(app_key, token, expires_in)
                _LOGGER.info("access token for %s refreshed, valid %d s", app_key, expires_in)
                return token

    async def invalidate(self, app_key: str, token: str) -> bool:
        """Drop the cached token of `app_key` only if it is still `token`; True when dropped."""
        raw = await self._kv.get(_key(app_key))
        if raw is None or _parse(raw).get("token") != token:
            # Someone already replaced it with a fresh token: keep theirs.
            return False
        return await self._kv.delete(_key(app_key), if_value=raw)

    async def _fresh(self, app_key: str) -> str | None:
        raw = await self._kv.get(_key(app_key))
        if raw is None:
            return None
        entry = _parse(raw)
        token, refresh_at = entry.get("token"), entry.get("refresh_at", entry.get("expires_at"))
        if not isinstance(token, str) or not isinstance(refresh_at, (int, float)):
            return None
        return token if self._clock.timestamp() < refresh_at else None

    async def _store(self, app_key: str, token: str, expires_in: int) -> None:
        now = self._clock.timestamp()
        # A short-lived token (tests shrink expires_in) would otherwise be stale on arrival and
        # trigger a fetch per call: never refresh earlier than half-way through its life.
        margin = min(self._margin, expires_in / 2)
        entry = {"token": token, "expires_at": now + expires_in, "refresh_at": now + expires_in - margin}
        await self._kv.set(_key(app_key), json.dumps(entry), ttl=max(expires_in, 1))


def _key(app_key: str) -> str:
    return f"token:{app_key}"


def _parse(raw: str) -> dict[str, object]:
    try:
        entry = json.loads(raw)
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}
