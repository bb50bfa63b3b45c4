"""Shared pieces of the emulated APIs: the error type, the call object, the route spec, validators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

# Generic "invalid parameter" (p/90313 lists 40035 and 40058); WeCom has no dedicated code for most
# malformed fields, so every such case answers this one (UNCONFIRMED per field, see wecom-api.md §14.2).
INVALID_PARAM = 40035
# "parameter empty" (p/90313): used where the doc says "required" but names no code.
PARAM_EMPTY = 40063

ERRMSGS: dict[int, str] = {
    -1: "system busy",
    0: "ok",
    40001: "invalid credential",
    40003: "invalid userid",
    40004: "invalid media type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40035: "invalid parameter",
    40050: "invalid chatid",
    40056: "invalid agentid",
    40063: "some parameters are empty",
    40068: "invalid tagid",
    40071: "tag name already exists",
    40096: "invalid external userid",
    40126: "corp tag count exceeds the limit",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41011: "missing agentid",
    41035: "missing external userid",
    41037: "missing contact way type",
    41038: "missing contact way scene",
    41039: "invalid contact way type",
    41040: "invalid contact way scene",
    41041: "contact way user count exceeds 100",
    41043: "missing contact way config_id",
    41044: "invalid contact way config_id",
    41045: "contact way quota exceeded",
    41046: "missing msgid",
    41047: "invalid msgid",
    41048: "no customer to send to",
    41049: "missing welcome code",
    41050: "invalid or expired welcome code",
    41051: "welcome message already delivered",
    41063: "group msg is being dispatched",
    41064: "too many attachments",
    41065: "invalid attachment msgtype",
    41093: "group msg task cancelled",
    41094: "remind frequency out of limit",
    41096: "welcome message is being distributed",
    42001: "access_token expired",
    44001: "empty media data",
    45001: "media size exceeds limit",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    48002: "api forbidden",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
    81017: "too many items requested, use owner_filter",
    84061: "not external contact",
    84074: "no external contact permission",
    95000: "invalid open_kfid",
    95001: "send msg count limit exceed",
    95002: "send msg time limit exceed",
    95004: "open_kfid not exist",
    95007: "invalid msg token",
    95013: "session already ended",
    95014: "not a servicer",
    95016: "invalid service state transition",
    95018: "invalid service state for sending",
    95019: "servicer is not receiving",
}


class ApiError(Exception):
    """A business error answered as HTTP 200 + {"errcode", "errmsg"}."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        self.errcode = errcode
        base = ERRMSGS.get(errcode, "error")
        self.errmsg = f"{base}: {detail}" if detail else base
        super().__init__(self.errmsg)


@dataclass
class ApiCall:
    """One parsed API request as the handlers see it."""

    query: Mapping[str, str]
    body: dict[str, Any]
    app: str | None
    request: web.Request | None = None
    # Handlers may replace the journaled body (multipart uploads summarise themselves).
    journal_body: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["EmulatorState", ApiCall], "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass(frozen=True)
class ApiSpec:
    """One emulated API: path under /cgi-bin, HTTP method(s) ("POST|GET"), handler, apps allowed."""

    path: str
    method: str
    handler: Handler
    apps: frozenset[str] | None = None  # None = any app of the corp
    multipart: bool = False
    needs_token: bool = True


def ok(**payload: Any) -> dict[str, Any]:
    """A success body: errcode 0, errmsg "ok", then the payload."""
    return {"errcode": 0, "errmsg": "ok", **payload}


def utf8_len(text: str) -> int:
    """Length in bytes, the unit WeCom limits are stated in."""
    return len(text.encode("utf-8"))


def require_str(body: Mapping[str, Any], key: str, errcode: int = PARAM_EMPTY) -> str:
    """`body[key]` as a non-empty string, else ApiError(errcode)."""
    value = body.get(key)
    if value is None or value == "":
        raise ApiError(errcode, f"{key} is required")
    if not isinstance(value, str):
        raise ApiError(INVALID_PARAM, f"{key} must be a string")
    return value


def opt_str(body: Mapping[str, Any], key: str, *, max_chars: int | None = None) -> str | None:
    """Optional string field with a character limit."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(INVALID_PARAM, f"{key} must be a string")
    if max_chars is not None and len(value) > max_chars:
        raise ApiError(INVALID_PARAM, f"{key} longer than {max_chars} characters")
    return value


def str_list(body: Mapping[str, Any], key: str) -> list[str]:
    """Optional list of strings (missing = empty)."""
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(INVALID_PARAM, f"{key} must be a list of strings")
    return list(value)


def int_field(body: Mapping[str, Any], key: str, default: int) -> int:
    """Optional integer field (JSON ints or numeric strings)."""
    value = body.get(key, default)
    if isinstance(value, bool):
        raise ApiError(INVALID_PARAM, f"{key} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAM, f"{key} must be an integer") from exc
