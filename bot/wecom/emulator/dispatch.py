"""The /cgi-bin pipeline: journal, faults, rate limits, token check, method/body parsing, handler.

Every business failure is HTTP 200 + {"errcode", "errmsg"} (§0); only http_status faults and unknown
paths answer otherwise.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.wecom.emulator.common import ApiCall, ApiError, ApiSpec
from bot.wecom.emulator.hold import hold

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

TOKEN_ERRCODES = frozenset({40014, 42001})


def _answer(payload: dict[str, Any]) -> web.Response:
    # Captured responses carry Error-Code / Error-Msg headers (§0, [obs]); the code is enough here.
    return web.json_response(payload, headers={"Error-Code": str(payload.get("errcode", 0))})


async def _parse_body(
    request: web.Request, spec: ApiSpec, state: EmulatorState
) -> tuple[dict[str, Any], Any]:
    """(body for the handler, body for the journal)."""
    if spec.multipart or request.method == "GET":
        return {}, None
    raw = await request.read()
    if not raw.strip():
        return {}, None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(state.options.bad_json_errcode, "invalid json") from exc
    if not isinstance(body, dict):
        raise ApiError(state.options.bad_json_errcode, "json body must be an object")
    return body, body


async def handle(state: EmulatorState, spec: ApiSpec | None, request: web.Request) -> web.StreamResponse:
    """Run one /cgi-bin call through faults, limits, auth and its handler; journal the outcome."""
    path = request.path
    query = dict(request.query)
    entry = state.journal_book.record(
        method=request.method, path=path, query=query, body=None, errcode=None, at=state.clock.timestamp()
    )
    if spec is None:
        entry["errcode"] = 404
        return web.Response(status=404, text="not found")
    call = ApiCall(query=query, body={}, app=None, request=request)
    state.in_flight[path] = state.in_flight.get(path, 0) + 1
    try:
        payload = await _run(state, spec, request, call, entry)
    except _HttpFault as fault:
        entry["errcode"] = None
        entry["http_status"] = fault.status
        return web.Response(status=fault.status, text=f"emulated HTTP {fault.status}")
    finally:
        state.in_flight[path] -= 1
    entry["errcode"] = payload.get("errcode")
    if call.journal_body is not None:
        entry["body"] = call.journal_body
    return _answer(payload)


class _HttpFault(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def _run(
    state: EmulatorState, spec: ApiSpec, request: web.Request, call: ApiCall, entry: dict[str, Any]
) -> dict[str, Any]:
    try:
        if request.method not in spec.method.split("|"):
            raise ApiError(state.options.wrong_method_errcode, f"{spec.path} expects {spec.method}")
        call.body, entry["body"] = await _parse_body(request, spec, state)
        fault = state.faults.take(spec.path)
        if fault is not None:
            if fault.timeout:
                await hold(fault.delay_seconds)
            if fault.http_status is not None:
                raise _HttpFault(fault.http_status)
            if fault.errcode is not None:
                if fault.errcode in TOKEN_ERRCODES and call.query.get("access_token"):
                    # Behave like a real expiry/revocation: the client must fetch a new token.
                    state.tokens.revoke_value(call.query["access_token"], fault.errcode)
                raise ApiError(fault.errcode, "emulated fault")
        limit = state.options.concurrency_limit
        if limit is not None and state.in_flight.get(spec.path, 0) > limit:
            raise ApiError(45033)
        if not state.limiter.hit(spec.path, state.clock.timestamp()):
            raise ApiError(45009)
        if spec.needs_token:
            token = state.tokens.check(call.query.get("access_token"), state.clock.timestamp())
            if spec.apps is not None and token.app not in spec.apps:
                raise ApiError(state.options.foreign_token_errcode, f"token of app {token.app}")
            call.app = token.app
        result = spec.handler(state, call)
        if inspect.isawaitable(result):
            result = await result
        return result
    except ApiError as exc:
        return {"errcode": exc.errcode, "errmsg": exc.errmsg}
