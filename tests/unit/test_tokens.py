"""TokenCache on MemoryKV and a FrozenClock: early refresh, single flight, invalidate-if-equal."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import errors
from bot.clock import FrozenClock
from bot.kv import MemoryKV
from bot.wecom.tokens import TokenCache


class Fetcher:
    """A scripted gettoken: counts calls, hands out t1, t2, ... and can be held at a gate."""

    def __init__(self, expires_in: int = 7200, *, gated: bool = False) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self) -> tuple[str, int]:
        self.calls += 1
        self.started.set()
        await self.gate.wait()
        return f"t{self.calls}", self.expires_in


async def test_twenty_concurrent_gets_fetch_once(clock: FrozenClock) -> None:
    cache = TokenCache(MemoryKV(clock), clock, margin=300)
    fetch = Fetcher(gated=True)
    tasks = [asyncio.create_task(cache.get("corp:contact", fetch)) for _ in range(20)]
    await fetch.started.wait()
    fetch.gate.set()
    assert await asyncio.gather(*tasks) == ["t1"] * 20
    assert fetch.calls == 1


async def test_two_caches_sharing_a_kv_fetch_once(clock: FrozenClock) -> None:
    kv = MemoryKV(clock)
    replica_a, replica_b = TokenCache(kv, clock, margin=300), TokenCache(kv, clock, margin=300)
    fetch = Fetcher(gated=True)
    task_a = asyncio.create_task(replica_a.get("corp:contact", fetch))
    await fetch.started.wait()
    task_b = asyncio.create_task(replica_b.get("corp:contact", fetch))
    fetch.gate.set()
    assert await asyncio.gather(task_a, task_b) == ["t1", "t1"]
    assert fetch.calls == 1


async def test_cached_until_margin_then_refreshed(clock: FrozenClock) -> None:
    cache = TokenCache(MemoryKV(clock), clock, margin=300)
    fetch = Fetcher(7200)
    assert await cache.get("a", fetch) == "t1"
    clock.advance(7200 - 300 - 1)
    assert await cache.get("a", fetch) == "t1"
    assert fetch.calls == 1
    clock.advance(2)
    assert await cache.get("a", fetch) == "t2"
    assert fetch.calls == 2


async def test_short_lived_token_is_not_refreshed_on_every_call(clock: FrozenClock) -> None:
    cache = TokenCache(MemoryKV(clock), clock, margin=300)
    fetch = Fetcher(60)
    assert await cache.get("a", fetch) == "t1"
    clock.advance(29)
    assert await cache.get("a", fetch) == "t1"
    clock.advance(2)
    assert await cache.get("a", fetch) == "t2"


async def test_apps_have_separate_tokens(clock: FrozenClock) -> None:
    cache = TokenCache(MemoryKV(clock), clock, margin=300)
    fetch = Fetcher()
    assert await cache.get("corp:contact", fetch) == "t1"
    assert await cache.get("corp:kf", fetch) == "t2"
    assert await cache.get("corp:contact", fetch) == "t1"


async def test_invalidate_only_drops_the_same_token(clock: FrozenClock) -> None:
    kv = MemoryKV(clock)
    replica_a, replica_b = TokenCache(kv, clock, margin=300), TokenCache(kv, clock, margin=300)
    fetch = Fetcher()
    assert await replica_a.get("a", fetch) == "t1"
    assert await replica_b.get("a", fetch) == "t1"
    # Replica A sees 42001 first, drops t1 and fetches t2.
    assert await replica_a.invalidate("a", "t1") is True
    assert await replica_a.get("a", fetch) == "t2"
    # Replica B's late 42001 for t1 must not throw away A's fresh t2.
    assert await replica_b.invalidate("a", "t1") is False
    assert await replica_b.get("a", fetch) == "t2"
    assert fetch.calls == 2


async def test_invalidate_without_a_cached_token(clock: FrozenClock) -> None:
    cache = TokenCache(MemoryKV(clock), clock, margin=300)
    assert await cache.invalidate("a", "t1") is False


async def test_failed_fetch_propagates_and_next_get_retries(clock: FrozenClock) -> None:
    cache = TokenCache(MemoryKV(clock), clock, margin=300)

    async def busy() -> tuple[str, int]:
        raise errors.Transient(-1, "busy", api="gettoken")

    with pytest.raises(errors.Transient):
        await cache.get("a", busy)
    # The locks were released: the next caller fetches at once.
    assert await cache.get("a", Fetcher()) == "t1"


async def test_token_is_never_logged(clock: FrozenClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cache = TokenCache(MemoryKV(clock), clock, margin=300)

    async def fetch() -> tuple[str, int]:
        return "SECRET-TOKEN-VALUE", 7200

    assert await cache.get("a", fetch) == "SECRET-TOKEN-VALUE"
    assert "refreshed" in caplog.text
    assert "SECRET-TOKEN-VALUE" not in caplog.text
