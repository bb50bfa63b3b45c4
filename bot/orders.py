"""The shop's order webhook: `POST /api/events/order`, HMAC-signed, stored in the inbox once per order.

Body (JSON): `order_id`, `external_userid`, `amount_cents` (optional int), `paid_at` (epoch seconds
or ISO 8601; naive = Asia/Shanghai), `items` (optional list of objects). Header
`X-Siyu-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed with `sop.order_webhook_secret`.
Answers: 404 when no secret is configured (the webhook is off), 413 for an oversized body, 401 for
a missing or wrong signature, 400 with `{"error": "<field>: <why>"}` for a bad body, and
`200 {"ok": true, "duplicate": bool}` once the row is durable. The stored body is parsed again by
`callback.parse("shop", ...)` when the inbox worker handles it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from aiohttp import web

from bot import errors, metrics
from bot.appkeys import RUNTIME
from bot.inbox import Stored
from bot.wecom import callback

_LOGGER = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Siyu-Signature"
SIGNATURE_SCHEME = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The X-Siyu-Signature value for `body` (the shop computes the same)."""
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, given: str) -> bool:
    """Constant-time check of an X-Siyu-Signature header value."""
    expected = sign(secret, body).encode()
    return hmac.compare_digest(given.strip().lower().encode("utf-8", "replace"), expected)


def _error(status: int, reason: str) -> web.Response:
    metrics.CALLBACKS.labels(callback.SHOP, f"rejected_{status}").inc()
    return web.json_response({"ok": False, "error": reason}, status=status)


async def order_webhook(request: web.Request) -> web.Response:
    """POST /api/events/order: verify, parse, store durably, acknowledge."""
    runtime = request.app[RUNTIME]
    secret = runtime.settings.sop.order_webhook_secret
    if secret is None:
        return _error(404, "order webhook not configured")
    limit = runtime.settings.service.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"body larger than {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {limit} bytes")
    if not signature_ok(secret.get_secret_value(), body, request.headers.get(SIGNATURE_HEADER, "")):
        _LOGGER.info("order webhook refused: bad signature")
        return _error(401, "bad or missing X-Siyu-Signature")
    try:
        plaintext = body.decode("utf-8")
        event = callback.parse(callback.SHOP, plaintext)
    except UnicodeDecodeError:
        return _error(400, "body is not UTF-8")
    except errors.MalformedCallback as exc:
        return _error(400, str(exc))
    new = await runtime.inbox.put(Stored(callback.SHOP, plaintext, event))
    metrics.CALLBACKS.labels(callback.SHOP, "accepted" if new else "duplicate").inc()
    _LOGGER.info("order received", extra={"dedup_key": event.dedup_key, "duplicate": not new})
    return web.json_response({"ok": True, "duplicate": not new})


def add_routes(app: web.Application) -> None:
    """The webhook route."""
    app.router.add_post("/api/events/order", order_webhook)
