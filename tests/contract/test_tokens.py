"""TokenCache across replicas on each KV backend: one fetch, and no replica drops another's token."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.clock import FrozenClock
from bot.kv import KV, MemoryKV, RedisKV
from bot.wecom.tokens import TokenCache


@pytest.fixture
async def kv(request: Any, clock: FrozenClock):
    """A MemoryKV, or a RedisKV under a fresh per-test prefix (skips without SIYU_TEST_REDIS_URL)."""
    if request.param == "memory":
        yield MemoryKV(clock)
        return
    client = aioredis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    prefix = f"siyu-test:{uuid.uuid4().hex}:"
    backend = RedisKV(client, prefix)
    try:
        yield backend
    finally:
        async for key in client.scan_iter(match=prefix + "*"):
            await client.delete(key)
        await backend.close()


@pytest.mark.parametrize("kv", ["memory", "redis"], indirect=True)
class TestTokenCacheAcrossReplicas:
    """Several TokenCache instances (replicas) sharing one KV."""

    async def test_replicas_fetch_once(self, kv: KV, clock: FrozenClock) -> None:
        replicas = [TokenCache(kv, clock, margin=300) for _ in range(4)]
        calls, started, gate = 0, asyncio.Event(), asyncio.Event()

        async def fetch() -> tuple[str, int]:
            nonlocal calls
            calls += 1
            started.set()
            await gate.wait()
            return f"t{calls}", 7200

        first = asyncio.create_task(replicas[0].get("corp:contact", fetch))
        await started.wait()
        others = [asyncio.create_task(r.get("corp:contact", fetch)) for r in replicas for _ in range(5)]
        gate.set()
        assert await asyncio.wait_for(asyncio.gather(first, *others), timeout=20) == ["t1"] * 21
        assert calls == 1

    async def test_refresh_is_shared(self, kv: KV, clock: FrozenClock) -> None:
        replica_a, replica_b = TokenCache(kv, clock, margin=300), TokenCache(kv, clock, margin=300)
        calls = 0

        async def fetch() -> tuple[str, int]:
            nonlocal calls
            calls += 1
            return f"t{calls}", 7200

        assert await replica_a.get("a", fetch) == "t1"
        clock.advance(7000)
        assert await replica_b.get("a", fetch) == "t2"
        assert await replica_a.get("a", fetch) == "t2"
        assert calls == 2

    async def test_stale_invalidate_keeps_the_fresh_token(self, kv: KV, clock: FrozenClock) -> None:
        replica_a, replica_b = TokenCache(kv, clock, margin=300), TokenCache(kv, clock, margin=300)
        tokens = iter(["t1", "t2", "t3"])

        async def fetch() -> tuple[str, int]:
            return next(tokens), 7200

        assert await replica_a.get("a", fetch) == "t1"
        assert await replica_a.invalidate("a", "t1") is True
        assert await replica_a.get("a", fetch) == "t2"
        assert await replica_b.invalidate("a", "t1") is False
        assert await replica_b.get("a", fetch) == "t2"
