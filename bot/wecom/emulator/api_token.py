"""`gettoken` and access_token checks (p/91039, errcodes p/90313).

One live token per app, returned unchanged (with a shrinking `expires_in`) until it expires on the
injected clock; tests can revoke a live token early or force the next gettoken to rotate it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.common import ApiCall, ApiError, ApiSpec, ok

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState


@dataclass
class IssuedToken:
    """One access_token the emulator handed out."""

    value: str
    app: str
    issued_at: float
    expires_at: float
    dead_errcode: int | None = None  # set when revoked: 40014 or 42001


class TokenStore:
    """Issued tokens by value, and the current token per app."""

    def __init__(self) -> None:
        self.by_value: dict[str, IssuedToken] = {}
        self.current: dict[str, IssuedToken] = {}
        self.gettoken_failures: list[float] = []

    def check(self, value: str | None, now: float) -> IssuedToken:
        """The token record for a call, or ApiError 41001 / 40014 / 42001."""
        if not value:
            raise ApiError(41001)
        token = self.by_value.get(value)
        if token is None:
            raise ApiError(40014)
        if token.dead_errcode is not None:
            raise ApiError(token.dead_errcode)
        if now >= token.expires_at:
            raise ApiError(42001)
        return token

    def revoke(self, app: str, errcode: int = 40014) -> str | None:
        """Kill the app's live token early (WeCom may do this); calls with it get `errcode`."""
        token = self.current.pop(app, None)
        if token is None:
            return None
        token.dead_errcode = errcode
        return token.value

    def revoke_value(self, value: str, errcode: int) -> None:
        """Kill one token by value (used by 40014/42001 faults so the client must re-fetch)."""
        token = self.by_value.get(value)
        if token is None:
            return
        token.dead_errcode = errcode
        if self.current.get(token.app) is token:
            del self.current[token.app]

    def rotate(self, app: str) -> None:
        """Make the next gettoken issue a new token; the old one stays valid until it expires."""
        self.current.pop(app, None)


def _app_for_secret(state: EmulatorState, secret: str) -> str | None:
    for name in ("contact", "kf"):
        creds = state.settings.app(name)
        if creds.secret is not None and creds.secret.get_secret_value() == secret:
            return name
    return None


def gettoken(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """GET /cgi-bin/gettoken?corpid&corpsecret."""
    now = state.clock.timestamp()
    if _gettoken_blocked(state, now):
        raise ApiError(45009, "too many failed gettoken calls")
    try:
        app = _check_credentials(state, call.query)
    except ApiError:
        state.tokens.gettoken_failures.append(now)
        raise
    token = state.tokens.current.get(app)
    if token is None or token.dead_errcode is not None or now >= token.expires_at:
        ttl = state.settings.emulator.token_ttl_seconds
        token = IssuedToken(value=state.ids.token(), app=app, issued_at=now, expires_at=now + ttl)
        state.tokens.by_value[token.value] = token
        state.tokens.current[app] = token
    return ok(access_token=token.value, expires_in=int(token.expires_at - now))


def _check_credentials(state: EmulatorState, query: Mapping[str, str]) -> str:
    corpid, secret = query.get("corpid"), query.get("corpsecret")
    if not corpid:
        raise ApiError(41002)
    if not secret:
        raise ApiError(41004)
    if corpid != state.settings.wecom.corp_id:
        raise ApiError(40013)
    app = _app_for_secret(state, secret)
    if app is None:
        raise ApiError(40001)
    return app


def _gettoken_blocked(state: EmulatorState, now: float) -> bool:
    # ~2000 failed gettoken calls per hour block the corp for an hour: a WeCom staff answer, not the
    # doc (UNCONFIRMED, wecom-api.md §1) -> `options.gettoken_failure_limit_per_hour`.
    limit = state.options.gettoken_failure_limit_per_hour
    recent = [t for t in state.tokens.gettoken_failures if now - t < 3600]
    state.tokens.gettoken_failures[:] = recent
    return limit is not None and len(recent) >= limit


ROUTES = [ApiSpec("/cgi-bin/gettoken", "GET", gettoken, needs_token=False)]
