"""create_emulator: the fake WeCom as an aiohttp application (state in memory, clock injected)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.config import Settings
from bot.wecom.emulator import (
    api_contact,
    api_contact_way,
    api_groupchat,
    api_groupmsg,
    api_kf,
    api_media,
    api_message,
    api_tags,
    api_token,
    api_welcome,
    archive,
    control,
    dispatch,
)
from bot.wecom.emulator.common import ApiSpec
from bot.wecom.emulator.state import EmulatorState

EMULATOR_STATE = web.AppKey("emulator_state", EmulatorState)

API_ROUTES: tuple[ApiSpec, ...] = (
    *api_token.ROUTES,
    *api_contact.ROUTES,
    *api_tags.ROUTES,
    *api_contact_way.ROUTES,
    *api_welcome.ROUTES,
    *api_groupchat.ROUTES,
    *api_groupmsg.ROUTES,
    *api_message.ROUTES,
    *api_kf.ROUTES,
    *api_media.ROUTES,
)

# Large enough for a 20 MB file upload (§12) plus multipart overhead.
MAX_BODY_BYTES = 21 * 1024 * 1024


def create_emulator(
    settings: Settings, *, clock: Clock, session: aiohttp.ClientSession | None = None, seed: int | None = None
) -> web.Application:
    """The emulator app; `app[EMULATOR_STATE]` is its EmulatorState."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    state = EmulatorState(settings, clock, session, seed=seed)
    app[EMULATOR_STATE] = state
    specs = {spec.path: spec for spec in API_ROUTES}

    async def cgi_bin(request: web.Request) -> web.StreamResponse:
        return await dispatch.handle(state, specs.get(request.path), request)

    app.router.add_routes(control.routes(state))
    app.router.add_routes(archive.routes(state))
    app.router.add_routes(api_groupmsg.routes(state))
    app.router.add_route("*", "/cgi-bin/{tail:.*}", cgi_bin)
    app.cleanup_ctx.append(_session_ctx)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    """Close the callback ClientSession if the emulator created it (an injected one is the caller's)."""
    state = app[EMULATOR_STATE]
    yield
    if state.owns_session and state.session is not None:
        await state.session.close()
