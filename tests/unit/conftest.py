"""Emulator fixtures (prefixed `emu_`): the app, a test client, a token-aware caller, a callback receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bot.config import Settings
from bot.wecom import CALLBACK_PATHS
from bot.wecom.crypto import CallbackCrypto, parse_xml
from bot.wecom.emulator import EMULATOR_STATE, EmulatorState, create_emulator


@pytest.fixture
def emu_settings(settings_factory) -> Settings:
    """Demo-corp settings with a short callback timeout so retry tests stay fast."""
    return settings_factory(**{"emulator.callback_timeout_seconds": 0.2})


@pytest.fixture
def emu_app(emu_settings, clock) -> web.Application:
    """A fresh emulator on the frozen clock."""
    return create_emulator(emu_settings, clock=clock, seed=7)


@pytest.fixture
async def emu_client(aiohttp_client, emu_app):
    """TestClient talking to the emulator."""
    return await aiohttp_client(emu_app)


@pytest.fixture
def emu_state(emu_client) -> EmulatorState:
    """The running emulator's state."""
    return emu_client.app[EMULATOR_STATE]


@pytest.fixture
def emu_call(emu_client, emu_settings) -> Callable[..., Awaitable[dict[str, Any]]]:
    """`await emu_call(app, method, path, json=..., params=...)` with a fetched access_token."""
    tokens: dict[str, str] = {}

    async def fetch(app: str) -> str:
        secret = emu_settings.app(app).secret.get_secret_value()
        resp = await emu_client.get(
            "/cgi-bin/gettoken", params={"corpid": emu_settings.wecom.corp_id, "corpsecret": secret}
        )
        tokens[app] = (await resp.json())["access_token"]
        return tokens[app]

    async def send(method: str, path: str, token: str, json: Any, params: dict | None) -> dict[str, Any]:
        query = {"access_token": token, **(params or {})}
        resp = await emu_client.request(method, f"/cgi-bin/{path}", params=query, json=json)
        assert resp.status == 200
        return await resp.json()

    async def call(
        app: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        if token is not None:
            return await send(method, path, token, json, params)
        body = await send(method, path, tokens.get(app) or await fetch(app), json, params)
        if body.get("errcode") == 42001 and not emu_state_faulted(body):
            # Like a real client: the cached token expired on the clock, fetch a new one and replay once.
            body = await send(method, path, await fetch(app), json, params)
        return body

    def emu_state_faulted(body: dict[str, Any]) -> bool:
        return "emulated fault" in body.get("errmsg", "")

    return call


class Receiver:
    """A tiny service stand-in: verifies, decrypts and records callbacks; can stall the first N."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.received: list[dict[str, Any]] = []
        self.stall_first = 0
        self.hits = 0
        self._never = asyncio.Event()

    def crypto(self, app: str) -> CallbackCrypto:
        creds = self.settings.app(app)
        receive_id = "" if app == "robot" else self.settings.wecom.corp_id
        return CallbackCrypto(
            creds.callback_token.get_secret_value(), creds.encoding_aes_key.get_secret_value(), receive_id
        )

    def handler(self, app: str):
        async def handle(request: web.Request) -> web.Response:
            self.hits += 1
            if self.hits <= self.stall_first:
                await self._never.wait()  # the emulator's callback timeout cancels this attempt
            body = await request.text()
            q = request.query
            if app == "robot":
                encrypt = json.loads(body)["encrypt"]
                envelope: dict[str, str] = {}
            else:
                envelope = parse_xml(body)
                encrypt = envelope["Encrypt"]
            plain = self.crypto(app).decrypt(q["msg_signature"], q["timestamp"], q["nonce"], encrypt)
            self.received.append({"app": app, "envelope": envelope, "plain": plain, "query": dict(q)})
            return web.Response(text="")

        return handle

    def echo(self, app: str):
        async def handle(request: web.Request) -> web.Response:
            q = request.query
            return web.Response(
                text=self.crypto(app).decrypt(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
            )

        return handle


@pytest.fixture
async def emu_receiver(aiohttp_server, emu_settings, emu_state) -> Receiver:
    """A running Receiver; the emulator's callback_base_url points at it."""
    receiver = Receiver(emu_settings)
    app = web.Application()
    for name, path in CALLBACK_PATHS.items():
        app.router.add_post(path, receiver.handler(name))
        app.router.add_get(path, receiver.echo(name))
    server = await aiohttp_server(app)
    emu_state.callback_base_url = str(server.make_url(""))
    return receiver
