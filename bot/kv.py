"""Cache, locks and rate limits: the `KV` protocol, `MemoryKV` (one process) and `RedisKV` (replicas).

Both implement the same semantics and run the same contract suite (tests/contract/test_kv.py):

- `get` / `set` with an optional TTL in seconds; `claim` sets only if absent (SET NX PX);
- `delete(key, if_value=...)` deletes only while the key still holds `if_value` (compare-and-delete);
- `lock(name, ttl=, wait=)` is an async context manager; it raises `errors.LockTimeout` when the lock
  is not acquired within `wait` seconds, and a holder that vanished loses the lock after `ttl`;
- `hit(key, limit=, window=)` is a fixed-window counter: 0.0 when the hit is allowed, else the
  seconds until the window resets.

`MemoryKV` measures TTLs on the injected clock (`clock.monotonic()`), so tests advance a FrozenClock
instead of sleeping. `RedisKV` measures them on the Redis server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from bot import errors
from bot.clock import Clock

if TYPE_CHECKING:
    from bot.config import Settings

_LOGGER = logging.getLogger(__name__)


class KV(Protocol):
    """Key-value backend for cache entries, locks and rate-limit windows."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float | None = None) -> None: ...

    async def claim(self, key: str, value: str, ttl: float) -> bool: ...

    async def delete(self, key: str, *, if_value: str | None = None) -> bool: ...

    def lock(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[None]: ...

    async def hit(self, key: str, *, limit: int, window: float) -> float: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryKV:
    """In-process KV for the embedded default and tests; TTLs follow the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._data: dict[str, tuple[str, float | None]] = {}
        self._windows: dict[str, tuple[int, float]] = {}
        # Waiters for a lock wake when its holder releases it (no polling, no sleeping).
        self._released: dict[str, asyncio.Event] = {}
        self._writes = 0

    def _sweep(self) -> None:
        # Expired entries are dropped lazily on read; dedup claims are never read again, so every
        # so often drop them all to keep memory bounded.
        self._writes += 1
        if self._writes % 1024:
            return
        now = self._now()
        self._data = {k: v for k, v in self._data.items() if v[1] is None or v[1] > now}
        self._windows = {k: v for k, v in self._windows.items() if v[1] > now}

    def _now(self) -> float:
        return self._clock.monotonic()

    def _live(self, key: str) -> tuple[str, float | None] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= self._now():
            del self._data[key]
            return None
        return entry

    def _expiry(self, ttl: float | None) -> float | None:
        if ttl is None:
            return None
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        return self._now() + ttl

    async def get(self, key: str) -> str | None:
        """The value of `key`, or None when absent or expired."""
        entry = self._live(key)
        return entry[0] if entry else None

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store `value` under `key`, expiring after `ttl` seconds when given."""
        self._data[key] = (value, self._expiry(ttl))
        self._sweep()

    async def claim(self, key: str, value: str, ttl: float) -> bool:
        """Set `key` only if it is absent; True when this call set it."""
        if self._live(key) is not None:
            return False
        self._data[key] = (value, self._expiry(ttl))
        self._sweep()
        return True

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        """Delete `key` (only while it holds `if_value`, when given); True when deleted."""
        entry = self._live(key)
        if entry is None or (if_value is not None and entry[0] != if_value):
            return False
        del self._data[key]
        return True

    def ttl(self, key: str) -> float | None:
        """Seconds left before `key` expires; None when absent or without TTL (for tests and ops)."""
        entry = self._live(key)
        return None if entry is None or entry[1] is None else entry[1] - self._now()

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, ttl: float, wait: float) -> AsyncIterator[None]:
        """Hold lock `name` for at most `ttl` seconds; raise LockTimeout after waiting `wait` seconds."""
        key, token = f"lock:{name}", uuid.uuid4().hex
        await self._acquire(key, token, ttl=ttl, wait=wait)
        try:
            yield
        finally:
            if not await self.delete(key, if_value=token):
                _LOGGER.warning("lock %s expired before its holder released it", name)
            self._released.pop(key, asyncio.Event()).set()

    async def _acquire(self, key: str, token: str, *, ttl: float, wait: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not await self.claim(key, token, ttl):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise errors.LockTimeout(f"lock {key[5:]} is held elsewhere")
            released = self._released.setdefault(key, asyncio.Event())
            # Also wake when the holder's TTL runs out (on a real clock) in case it never releases.
            holder_left = self.ttl(key) or 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), timeout=min(remaining, max(holder_left, 0.001)))

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        """Count a hit in `key`'s window: 0.0 when allowed, else seconds until the window resets."""
        now = self._now()
        count, resets_at = self._windows.get(key, (0, now))
        if resets_at <= now:
            count, resets_at = 0, now + window
        count += 1
        self._windows[key] = (count, resets_at)
        return 0.0 if count <= limit else resets_at - now

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def close(self) -> None:
        """Nothing to release."""


# Compare-and-delete: a holder whose entry expired and was re-claimed must not delete the new one.
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Fixed window: INCR, start the window on the first hit, report the time left when over the limit.
# One script so a crash between INCR and PEXPIRE cannot leave a counter that never expires.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if count <= tonumber(ARGV[2]) then
  return 0
end
return ttl
"""


class RedisKV:
    """KV on Redis, shared by replicas; every key carries `prefix`."""

    def __init__(self, client: aioredis.Redis, prefix: str = "siyu:") -> None:
        self._redis = client
        self._prefix = prefix
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)
        self._hit = client.register_script(_HIT)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> str | None:
        """The value of `key`, or None when absent or expired."""
        return _text(await self._redis.get(self._key(key)))

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store `value` under `key`, expiring after `ttl` seconds when given."""
        await self._redis.set(self._key(key), value, px=_millis(ttl) if ttl is not None else None)

    async def claim(self, key: str, value: str, ttl: float) -> bool:
        """Set `key` only if it is absent (SET NX PX); True when this call set it."""
        return bool(await self._redis.set(self._key(key), value, nx=True, px=_millis(ttl)))

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        """Delete `key` (only while it holds `if_value`, when given); True when deleted."""
        if if_value is None:
            return bool(await self._redis.delete(self._key(key)))
        return bool(await self._delete_if_equal(keys=[self._key(key)], args=[if_value]))

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, ttl: float, wait: float) -> AsyncIterator[None]:
        """Hold lock `name` for at most `ttl` seconds; raise LockTimeout after waiting `wait` seconds."""
        # redis-py's Lock does the token handling and the waiting; thread_local=False because
        # asyncio tasks share a thread and must not share a token.
        lock = self._redis.lock(
            self._key(f"lock:{name}"), timeout=ttl, blocking_timeout=wait, thread_local=False
        )
        if not await lock.acquire():
            raise errors.LockTimeout(f"lock {name} is held elsewhere")
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:
                # Raising here would turn finished work into a failure and invite a duplicate retry.
                _LOGGER.warning("lock %s expired before its holder released it", name)

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        """Count a hit in `key`'s window: 0.0 when allowed, else seconds until the window resets."""
        left = await self._hit(keys=[self._key(key)], args=[_millis(window), limit])
        return int(left) / 1000.0

    async def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        """Close the Redis client (and its pool)."""
        await self._redis.aclose()


def create_kv(settings: Settings, clock: Clock) -> KV:
    """RedisKV when `redis.url` is set (several replicas), else MemoryKV (one process)."""
    if settings.redis.url:
        client = aioredis.from_url(settings.redis.url, decode_responses=True)
        return RedisKV(client, settings.redis.key_prefix)
    return MemoryKV(clock)


def _millis(seconds: float) -> int:
    millis = int(seconds * 1000)
    if millis <= 0:
        raise ValueError("ttl must be at least one millisecond")
    return millis


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
