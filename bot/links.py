"""Tracked links in SOP content: `/r/<token>` records the click in the inbox, then redirects.

The runner creates a `ClickLink` row per (run, step, link) with `new_token()` and sends
`click_url(public_url, token)` instead of the real URL. A click becomes a `LinkClicked` event in
the inbox (de-duplicated per token and minute, so a reload storm counts once); the lifecycle
handlers decide what it means. The redirect itself changes nothing else. No auth: customers
click it, and a token is unguessable (192 random bits).
"""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from bot.appkeys import RUNTIME
from bot.inbox import Stored
from bot.store.models import ClickLink
from bot.wecom import callback

_LOGGER = logging.getLogger(__name__)

TOKEN_BYTES = 24
"""32 URL-safe characters, the width of `click_links.token`."""
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

NOT_FOUND_PAGE = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>链接已失效</title></head>"
    '<body style="font-family:sans-serif;text-align:center;padding:3em 1em;color:#555">'
    "<p>抱歉，这个链接不存在或已失效。</p><p>如有需要，请直接联系您的专属顾问。</p></body></html>"
)


def new_token() -> str:
    """A fresh link token (secrets.token_urlsafe, 32 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def click_url(public_url: str, token: str) -> str:
    """The tracked URL customers get for `token` (`service.public_url` + /r/<token>)."""
    return f"{public_url.rstrip('/')}/r/{token}"


def _redirectable(url: str) -> bool:
    """Only absolute http(s) URLs: a stored `javascript:` or relative URL is never followed."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


async def follow_link(request: web.Request) -> web.StreamResponse:
    """GET /r/{token}: store the click (durably), then 302 to the link's URL; 404 if unknown."""
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]
    link = None
    if _TOKEN_RE.match(token):
        async with runtime.sessions() as session:
            link = await session.get(ClickLink, token)
    if link is None or not _redirectable(link.url):
        return web.Response(status=404, text=NOT_FOUND_PAGE, content_type="text/html", charset="utf-8")
    # HEAD is what link-preview crawlers send; only a real GET is a click.
    if request.method == "GET":
        plaintext = callback.click_plaintext(
            token, link.enrollment_id, link.external_userid, link.step_id, runtime.clock.timestamp()
        )
        event = callback.parse(callback.LINK, plaintext)
        new = await runtime.inbox.put(Stored(callback.LINK, plaintext, event))
        _LOGGER.info("link clicked", extra={"dedup_key": event.dedup_key, "new": new})
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    raise web.HTTPFound(link.url, headers=headers)


def add_routes(app: web.Application) -> None:
    """The redirect route."""
    app.router.add_get("/r/{token}", follow_link)
