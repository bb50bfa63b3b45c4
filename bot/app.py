"""The aiohttp application: callbacks, order webhook, link redirects, health, metrics; the runtime."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot import api, errors, links, metrics, orders
from bot.appkeys import RUNTIME
from bot.clock import Clock, SystemClock
from bot.config import APP_NAMES, Settings
from bot.inbox import Stored
from bot.kv import KV
from bot.router import Router
from bot.runtime import Runtime
from bot.wecom import CALLBACK_PATHS, callback

_LOGGER = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    session: aiohttp.ClientSession | None = None,
    routers: Iterable[Router] | None = None,
    kv: KV | None = None,
    run_workers: bool = True,
    freeze_gc: bool | None = None,
) -> web.Application:
    """Build the service. Nothing connects until the app starts (cleanup context)."""
    freeze_gc = run_workers if freeze_gc is None else freeze_gc
    app = web.Application(
        # aiohttp answers 413 itself when a body exceeds this (request.read()).
        client_max_size=settings.service.max_body_bytes,
        middlewares=[error_middleware],
    )
    clock = clock or SystemClock()

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock, http=session, routers=routers, kv=kv)
        app[RUNTIME] = runtime
        if freeze_gc:
            # jieba's dictionary and the indexes are millions of long-lived objects: without this,
            # every full collection walks them all and stalls acknowledgements by 100 ms and more.
            gc.collect()
            gc.freeze()
        if run_workers:
            await runtime.start_workers()
        yield
        await runtime.stop()

    app.cleanup_ctx.append(runtime_ctx)
    setup_routes(app)
    return app


def setup_routes(app: web.Application) -> None:
    """Every HTTP route of the service."""
    for name in APP_NAMES:
        app.router.add_get(CALLBACK_PATHS[name], _callback_handler(name))
        app.router.add_post(CALLBACK_PATHS[name], _callback_handler(name))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    api.add_routes(app)
    orders.add_routes(app)  # POST /api/events/order (the shop's webhook, HMAC-signed)
    links.add_routes(app)  # GET /r/{token} (tracked SOP links)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Map refused callbacks to their HTTP status; never leak internals."""
    try:
        return await handler(request)
    except errors.CallbackError as exc:
        app_name = request.match_info.get("app", request.path.rsplit("/", 1)[-1])
        metrics.CALLBACKS.labels(app_name, f"rejected_{exc.status}").inc()
        _LOGGER.info(
            "callback refused", extra={"path": request.path, "status": exc.status, "reason": str(exc)}
        )
        return web.Response(status=exc.status, text=type(exc).__name__)
    except web.HTTPRequestEntityTooLarge:
        metrics.CALLBACKS.labels(request.path.rsplit("/", 1)[-1], "rejected_413").inc()
        return web.Response(status=413, text="BodyTooLarge")


def _callback_handler(app_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    # Bound once: looking up labelled children costs a lock per call on the hot path.
    accepted = metrics.CALLBACKS.labels(app_name, "accepted")
    duplicate = metrics.CALLBACKS.labels(app_name, "duplicate")
    ack_latency = metrics.ACK_LATENCY.labels(app_name)

    async def handle(request: web.Request) -> web.Response:
        runtime = request.app[RUNTIME]
        crypto = runtime.cryptos[app_name]
        if request.method == "GET":
            # URL verification: answer the bare plaintext, no quotes or newline (p/90930).
            return web.Response(text=callback.verify_url(crypto, request.query))
        started = runtime.clock.monotonic()
        if (
            request.content_length is not None
            and request.content_length > runtime.settings.service.max_body_bytes
        ):
            raise errors.BodyTooLarge()
        body = await request.read()
        delivery = callback.open_envelope(app_name, crypto, request.query, body)
        new = await runtime.inbox.put(Stored(delivery.app, delivery.plaintext, delivery.event))
        (accepted if new else duplicate).inc()
        ack_latency.observe(max(0.0, runtime.clock.monotonic() - started))
        if not new:
            _LOGGER.info("duplicate callback acknowledged", extra={"dedup_key": delivery.event.dedup_key})
        # An empty 200 is WeCom's documented "received, no passive reply" (wecom-api.md §2.5).
        return web.Response(text="")

    handle.__name__ = f"callback_{app_name}"
    return handle


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database (and Redis, when configured) answer."""
    runtime = request.app[RUNTIME]
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    if runtime.settings.redis.url:
        try:
            checks["redis"] = "ok" if await runtime.kv.ping() else "error: no pong"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus metrics."""
    return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
