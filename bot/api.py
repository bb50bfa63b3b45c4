"""The JSON API (the sidebar and ops tools use it): bearer-token auth, customer profiles.

`api.token` null turns the API off (503); a missing or wrong token is 401. Routes are added in
`bot.app.setup_routes`.
"""

from __future__ import annotations

import hmac
import json

from aiohttp import web

from bot.appkeys import RUNTIME
from bot.profile import load_profile, to_json


def authorize(request: web.Request) -> web.Response | None:
    """None when the request carries the API token; otherwise the response to give."""
    token = request.app[RUNTIME].settings.api.token
    if token is None:
        return web.json_response({"error": "API disabled"}, status=503)
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest on both branches: timing does not tell a wrong scheme from a wrong token.
    if not (hmac.compare_digest(value.strip().encode(), expected) and scheme.lower() == "bearer"):
        return web.json_response(
            {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": 'Bearer realm="siyu"'}
        )
    return None


async def customer_profile(request: web.Request) -> web.Response:
    """GET /api/customers/{external_userid}: the customer's profile as JSON."""
    refused = authorize(request)
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    external_userid = request.match_info["external_userid"]
    profile = await load_profile(runtime.sessions, external_userid, runtime.clock.now().date())
    if profile is None:
        return web.json_response({"error": "unknown customer"}, status=404)
    return web.json_response(to_json(profile), dumps=_dumps)


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def add_routes(app: web.Application) -> None:
    """The API's routes."""
    app.router.add_get("/api/customers/{external_userid}", customer_profile)
