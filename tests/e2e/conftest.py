"""End-to-end stack: the WeCom emulator and the service, both real aiohttp servers on one FrozenClock.

The emulator sends real encrypted callbacks to the service's callback URLs; the service calls the
emulator's /cgi-bin API. Workers do not run in the background: tests call `stack.drain()` and
advance the clock, so nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from tests_support import fresh_postgres

from bot.app import create_app
from bot.appkeys import RUNTIME
from bot.clock import FrozenClock
from bot.config import Settings
from bot.router import Router
from bot.runtime import Runtime
from bot.store import db
from bot.wecom import CALLBACK_PATHS
from bot.wecom.emulator import EMULATOR_STATE, EmulatorState, create_emulator


@dataclass
class Stack:
    """A running emulator + service pair."""

    settings: Settings
    clock: FrozenClock
    emulator: TestServer
    service: TestServer
    http: aiohttp.ClientSession
    _started: list[TestServer]

    @property
    def emu(self) -> EmulatorState:
        """The emulator's state (journal, faults, simulations)."""
        return self.emulator.app[EMULATOR_STATE]

    @property
    def runtime(self) -> Runtime:
        """The service's runtime (inbox, outbox, sessions)."""
        return self.service.app[RUNTIME]

    def url(self, app: str) -> str:
        """The service's callback URL for `app`."""
        return str(self.service.make_url(CALLBACK_PATHS[app]))

    async def drain(self) -> int:
        """Process everything due now."""
        return await self.runtime.drain()

    async def post(self, app: str, params: dict[str, str], body: str | bytes) -> tuple[int, str]:
        """POST a callback as WeCom would; returns (status, text)."""
        data = body.encode() if isinstance(body, str) else body
        async with self.http.post(self.url(app), params=params, data=data) as resp:
            return resp.status, await resp.text()

    async def restart(self, routers: Iterable[Router] | None = None) -> None:
        """Start a fresh service process on the same database (the old one must be closed)."""
        self.service = await start_service(self.settings, self.clock, routers)
        self._started.append(self.service)
        self.emu.callback_base_url = str(self.service.make_url("")).rstrip("/")

    def calls(self, suffix: str) -> list[dict[str, Any]]:
        """Emulator journal entries for an API path suffix."""
        return self.emu.calls(suffix)


async def start_service(
    settings: Settings, clock: FrozenClock, routers: Iterable[Router] | None = None
) -> TestServer:
    """Start the service app (no background workers)."""
    server = TestServer(create_app(settings, clock=clock, routers=routers, run_workers=False))
    await server.start_server()
    return server


@pytest.fixture
async def stack_factory(settings_factory, clock) -> AsyncIterator[Any]:
    """Start emulator + service; `routers=` replaces the handler set, `**overrides` change settings."""
    started: list[TestServer] = []
    http = aiohttp.ClientSession()

    async def make(routers: Iterable[Router] | None = None, **overrides: Any) -> Stack:
        base = settings_factory(**overrides)
        emulator = TestServer(create_emulator(base, clock=clock, seed=7))
        await emulator.start_server()
        started.append(emulator)
        settings = base.with_overrides(**{"wecom.base_url": str(emulator.make_url("")).rstrip("/")})
        service = await start_service(settings, clock, routers)
        started.append(service)
        emulator.app[EMULATOR_STATE].callback_base_url = str(service.make_url("")).rstrip("/")
        return Stack(settings, clock, emulator, service, http, started)

    yield make
    for server in reversed(started):
        await server.close()
    await http.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request) -> dict[str, Any]:
    """Settings overrides for each storage backend (PostgreSQL, migrated and empty, under CI)."""
    if request.param == "sqlite":
        return {}
    url = request.getfixturevalue("postgres_url")
    engine = await fresh_postgres(url)
    await db.upgrade(engine)  # serve refuses a behind-schema PostgreSQL; ops run `siyu db upgrade`
    await engine.dispose()
    return {"database.url": url}


@pytest.fixture
async def any_stack(backend, stack_factory) -> Stack:
    """The default stack on each storage backend."""
    return await stack_factory(**backend)


@pytest.fixture
async def stack(stack_factory) -> Stack:
    """The default stack: demo corp, default routers, SQLite in a temp dir."""
    return await stack_factory()
