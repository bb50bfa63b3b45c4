"""One KV contract, run against MemoryKV (FrozenClock) and RedisKV (SIYU_TEST_REDIS_URL).

Time passes through `backend.elapse(seconds)`: the memory twin advances the FrozenClock; on Redis
every key under the test's own prefix has its PTTL shortened (or is deleted when it runs out), which
is what the server would do after that many seconds. Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot import errors
from bot.clock import FrozenClock
from bot.kv import KV, MemoryKV, RedisKV, create_kv


@dataclass
class Backend:
    """A KV under test plus the means to let time pass and read TTLs."""

    name: str
    kv: KV
    clock: FrozenClock
    redis: aioredis.Redis | None = None
    prefix: str = ""

    async def elapse(self, seconds: float) -> None:
        """Let `seconds` pass for every key of this test."""
        self.clock.advance(seconds)
        if self.redis is None:
            return
        async for key in self.redis.scan_iter(match=self.prefix + "*"):
            left = await self.redis.pttl(key)
            if left < 0:
                continue
            remaining = left - int(seconds * 1000)
            if remaining <= 0:
                await self.redis.delete(key)
            else:
                await self.redis.pexpire(key, remaining)

    async def ttl(self, key: str) -> float | None:
        """Seconds before `key` expires, None when absent or without TTL."""
        if self.redis is None:
            assert isinstance(self.kv, MemoryKV)
            return self.kv.ttl(key)
        left = await self.redis.pttl(self.prefix + key)
        return None if left < 0 else left / 1000


@pytest.fixture
async def backend(request: Any, clock: FrozenClock):
    """MemoryKV on the frozen clock, or RedisKV under a fresh per-test key prefix."""
    if request.param == "memory":
        yield Backend("memory", MemoryKV(clock), clock)
        return
    url = request.getfixturevalue("redis_url")
    client = aioredis.from_url(url, decode_responses=True)
    prefix = f"siyu-test:{uuid.uuid4().hex}:"
    kv = RedisKV(client, prefix)
    try:
        yield Backend("redis", kv, clock, client, prefix)
    finally:
        # Only this test's keys: other suites may share database 15.
        async for key in client.scan_iter(match=prefix + "*"):
            await client.delete(key)
        await kv.close()


@pytest.mark.parametrize("backend", ["memory", "redis"], indirect=True)
class TestKV:
    """The KV contract: every backend must pass every test."""

    async def test_get_set_without_ttl(self, backend: Backend) -> None:
        kv = backend.kv
        assert await kv.get("a") is None
        await kv.set("a", "1")
        await kv.set("a", "2")
        assert await kv.get("a") == "2"
        assert await backend.ttl("a") is None
        await backend.elapse(10**6)
        assert await kv.get("a") == "2"

    async def test_set_with_ttl_expires(self, backend: Backend) -> None:
        kv = backend.kv
        await kv.set("t", "v", ttl=10)
        left = await backend.ttl("t")
        assert left is not None and 9 < left <= 10
        await backend.elapse(9.5)
        assert await kv.get("t") == "v"
        await backend.elapse(1)
        assert await kv.get("t") is None

    async def test_set_without_ttl_clears_an_earlier_ttl(self, backend: Backend) -> None:
        await backend.kv.set("k", "1", ttl=5)
        await backend.kv.set("k", "2")
        await backend.elapse(6)
        assert await backend.kv.get("k") == "2"

    async def test_claim_is_exclusive_until_expiry(self, backend: Backend) -> None:
        kv = backend.kv
        assert await kv.claim("c", "first", ttl=30) is True
        assert await kv.claim("c", "second", ttl=30) is False
        assert await kv.get("c") == "first"
        left = await backend.ttl("c")
        assert left is not None and 29 < left <= 30
        await backend.elapse(31)
        assert await kv.claim("c", "third", ttl=30) is True
        assert await kv.get("c") == "third"

    async def test_concurrent_claims_have_one_winner(self, backend: Backend) -> None:
        results = await asyncio.gather(*(backend.kv.claim("race", str(i), ttl=60) for i in range(20)))
        assert results.count(True) == 1
        assert await backend.kv.get("race") == str(results.index(True))

    async def test_compare_and_delete(self, backend: Backend) -> None:
        kv = backend.kv
        await kv.set("d", "mine")
        assert await kv.delete("d", if_value="theirs") is False
        assert await kv.get("d") == "mine"
        assert await kv.delete("d", if_value="mine") is True
        assert await kv.get("d") is None
        assert await kv.delete("d", if_value="mine") is False
        await kv.set("d", "x")
        assert await kv.delete("d") is True
        assert await kv.delete("d") is False

    async def test_lock_is_exclusive_and_times_out(self, backend: Backend) -> None:
        kv = backend.kv
        async with kv.lock("job", ttl=30, wait=0):
            with pytest.raises(errors.LockTimeout):
                async with kv.lock("job", ttl=30, wait=0):
                    pytest.fail("two holders of one lock")
            # Another name is independent.
            async with kv.lock("other", ttl=30, wait=0):
                pass
        async with kv.lock("job", ttl=30, wait=0):
            pass

    async def test_lock_timeout_is_retryable(self, backend: Backend) -> None:
        from bot import retry

        async with backend.kv.lock("busy", ttl=30, wait=0):
            with pytest.raises(errors.LockTimeout) as caught:
                async with backend.kv.lock("busy", ttl=30, wait=0):
                    pass
        assert retry.is_retryable(caught.value)

    async def test_lock_waiter_gets_it_on_release(self, backend: Backend) -> None:
        kv = backend.kv
        order: list[str] = []
        holding, release = asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with kv.lock("w", ttl=30, wait=0):
                order.append("first in")
                holding.set()
                await release.wait()
                order.append("first out")

        async def second() -> None:
            await holding.wait()
            async with kv.lock("w", ttl=30, wait=10):
                order.append("second in")

        task_a, task_b = asyncio.create_task(first()), asyncio.create_task(second())
        await holding.wait()
        release.set()
        await asyncio.wait_for(asyncio.gather(task_a, task_b), timeout=10)
        assert order == ["first in", "first out", "second in"]

    async def test_lock_expires_after_ttl_and_late_release_keeps_new_holder(self, backend: Backend) -> None:
        kv = backend.kv
        stale = kv.lock("x", ttl=5, wait=0)
        await stale.__aenter__()
        await backend.elapse(6)
        fresh = kv.lock("x", ttl=30, wait=0)
        await fresh.__aenter__()
        # The first holder finishes late: it must not release the second holder's lock.
        await stale.__aexit__(None, None, None)
        with pytest.raises(errors.LockTimeout):
            async with kv.lock("x", ttl=30, wait=0):
                pass
        await fresh.__aexit__(None, None, None)
        async with kv.lock("x", ttl=30, wait=0):
            pass

    async def test_hit_limits_a_window_and_says_when_to_retry(self, backend: Backend) -> None:
        kv = backend.kv
        assert [await kv.hit("rl", limit=3, window=60) for _ in range(3)] == [0.0, 0.0, 0.0]
        retry_after = await kv.hit("rl", limit=3, window=60)
        assert 59 < retry_after <= 60
        assert await kv.hit("rl-other", limit=3, window=60) == 0.0
        await backend.elapse(30)
        retry_after = await kv.hit("rl", limit=3, window=60)
        assert 29 < retry_after <= 30
        await backend.elapse(31)
        assert await kv.hit("rl", limit=3, window=60) == 0.0

    async def test_ping(self, backend: Backend) -> None:
        assert await backend.kv.ping() is True


async def test_memory_ttl_follows_the_injected_clock_not_wall_time(clock: FrozenClock) -> None:
    kv = MemoryKV(clock)
    await kv.set("k", "v", ttl=0.001)
    assert await kv.get("k") == "v"
    clock.advance(0.002)
    assert await kv.get("k") is None


async def test_create_kv_picks_memory_without_redis_url(settings, clock: FrozenClock) -> None:
    kv = create_kv(settings, clock)
    assert isinstance(kv, MemoryKV)


async def test_create_kv_picks_redis_with_url(settings_factory, clock: FrozenClock, redis_url: str) -> None:
    prefix = f"siyu-test:{uuid.uuid4().hex}:"
    kv = create_kv(settings_factory(**{"redis.url": redis_url, "redis.key_prefix": prefix}), clock)
    try:
        assert isinstance(kv, RedisKV)
        assert await kv.ping() is True
        await kv.set("k", "v", ttl=10)
        assert await kv.get("k") == "v"
        assert await kv.delete("k") is True
    finally:
        await kv.close()
