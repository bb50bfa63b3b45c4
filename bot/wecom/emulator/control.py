"""/emulator/* control endpoints: journal, callbacks, faults, simulations."""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.wecom.emulator.simulate import ACTIONS

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

FAULT_KEYS = frozenset({"path", "errcode", "timeout", "delay_seconds", "http_status", "count"})


def _bad(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def routes(state: EmulatorState) -> list[web.RouteDef]:
    """The control routes bound to `state`."""

    async def get_journal(request: web.Request) -> web.Response:
        return web.json_response(state.journal)

    async def delete_journal(request: web.Request) -> web.Response:
        state.clear_journal()
        return web.json_response({"cleared": True})

    async def get_callbacks(request: web.Request) -> web.Response:
        return web.json_response(state.callbacks)

    async def delete_callbacks(request: web.Request) -> web.Response:
        state.callbacks.clear()
        return web.json_response({"cleared": True})

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response([f.as_dict() for f in state.faults.pending])

    async def post_fault(request: web.Request) -> web.Response:
        try:
            data = await _json(request)
            unknown = set(data) - FAULT_KEYS
            if unknown or "path" not in data:
                raise ValueError(f"need path; unknown keys {sorted(unknown)}")
            fault = state.add_fault(
                str(data["path"]),
                errcode=data.get("errcode"),
                timeout=bool(data.get("timeout", False)),
                http_status=data.get("http_status"),
                count=int(data.get("count", 1)),
                delay_seconds=data.get("delay_seconds"),
            )
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return web.json_response(fault.as_dict())

    async def delete_faults(request: web.Request) -> web.Response:
        state.clear_faults()
        return web.json_response({"cleared": True})

    async def simulate(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ACTIONS:
            return _bad(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        method = getattr(state, f"simulate_{action}")
        try:
            kwargs = await _json(request)
            inspect.signature(method).bind(**kwargs)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        try:
            result = await method(**kwargs)
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response(result)

    return [
        web.get("/emulator/journal", get_journal),
        web.delete("/emulator/journal", delete_journal),
        web.get("/emulator/callbacks", get_callbacks),
        web.delete("/emulator/callbacks", delete_callbacks),
        web.get("/emulator/faults", get_faults),
        web.post("/emulator/faults", post_fault),
        web.delete("/emulator/faults", delete_faults),
        web.post("/emulator/simulate/{action}", simulate),
    ]
