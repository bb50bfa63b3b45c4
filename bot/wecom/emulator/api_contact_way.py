"""「联系我」 contact ways: add/get/update/del/list_contact_way (p/92572, p/92577 §5.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.api_contact import CONTACT_APPS
from bot.wecom.emulator.common import INVALID_PARAM, ApiCall, ApiError, ApiSpec, int_field, ok, opt_str
from bot.wecom.emulator.world import ContactWay

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

MAX_USERS = 100
TEMP_DEFAULT_EXPIRES = 7 * 86400
TEMP_MAX_SECONDS = 14 * 86400
TEMP_DEFAULT_CHAT_EXPIRES = 86400
LIST_DEFAULT_DAYS = 90
LIST_FLOOR = 1625846400
"""2021-07-10 00:00 Asia/Shanghai: list_contact_way returns nothing created earlier (p/92572)."""


def _apply(state: EmulatorState, way: ContactWay, body: dict[str, Any]) -> None:
    """Validate and copy the mutable fields; lists replace previous values (p/92577)."""
    remark = opt_str(body, "remark", max_chars=30)
    way_state = opt_str(body, "state", max_chars=30)
    users = body.get("user", way.user)
    parties = body.get("party", way.party)
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ApiError(INVALID_PARAM, "user must be a list of userids")
    if not isinstance(parties, list):
        raise ApiError(INVALID_PARAM, "party must be a list of department ids")
    for userid in users:
        staff = state.world.staff.get(userid)
        if staff is None:
            raise ApiError(40003, userid)
    # Parties are not modelled: each department counts as one user towards the 100 cap.
    if len(users) + len(parties) > MAX_USERS:
        raise ApiError(41041)
    if way.type == 1 and (len(users) != 1 or parties):
        raise ApiError(INVALID_PARAM, "type=1 needs exactly one user")
    if way.type == 2 and not users and not parties:
        raise ApiError(INVALID_PARAM, "user or party is required")
    if remark is not None:
        way.remark = remark
    if way_state is not None:
        way.state = way_state
    way.user, way.party = list(users), list(parties)
    if "skip_verify" in body:
        way.skip_verify = bool(body["skip_verify"])
    if "style" in body:
        way.style = int_field(body, "style", 1)
    if "unionid" in body:
        way.unionid = str(body["unionid"])
    if "conclusions" in body:
        way.conclusions = body["conclusions"] if isinstance(body["conclusions"], dict) else None
    if way.is_temp:
        way.expires_in = int_field(body, "expires_in", way.expires_in or TEMP_DEFAULT_EXPIRES)
        way.chat_expires_in = int_field(
            body, "chat_expires_in", way.chat_expires_in or TEMP_DEFAULT_CHAT_EXPIRES
        )
        if not 0 < way.expires_in <= TEMP_MAX_SECONDS or not 0 < way.chat_expires_in <= TEMP_MAX_SECONDS:
            raise ApiError(INVALID_PARAM, "expires_in / chat_expires_in must be within 14 days")


def add_contact_way(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Create a contact way; scene=2 also returns qr_code."""
    body = call.body
    if "type" not in body:
        raise ApiError(41037)
    if "scene" not in body:
        raise ApiError(41038)
    way_type, scene = body.get("type"), body.get("scene")
    if way_type not in (1, 2):
        raise ApiError(41039)
    if scene not in (1, 2):
        raise ApiError(41040)
    is_temp = bool(body.get("is_temp", False))
    if is_temp and way_type != 1:
        raise ApiError(INVALID_PARAM, "temporary mode is single-member only")
    # Temp ways do not use the 500k quota shared with join ways (p/92572).
    if not is_temp and state.contact_way_quota_used >= state.options.contact_way_quota:
        raise ApiError(41045)
    way = ContactWay(
        config_id=state.ids.hex(32),
        type=way_type,
        scene=scene,
        created_at=int(state.clock.timestamp()),
        is_temp=is_temp,
    )
    _apply(state, way, body)
    if scene == 2:
        way.qr_code = f"https://wework.qq.com/emulator/qr/{way.config_id}"
    state.world.contact_ways[way.config_id] = way
    if not is_temp:
        state.contact_way_quota_used += 1
    payload: dict[str, Any] = {"config_id": way.config_id}
    if way.qr_code:
        payload["qr_code"] = way.qr_code
    return ok(**payload)


def _way(state: EmulatorState, body: dict[str, Any]) -> ContactWay:
    config_id = body.get("config_id")
    if not config_id:
        raise ApiError(41043)
    way = state.world.contact_ways.get(config_id) if isinstance(config_id, str) else None
    if way is None:
        raise ApiError(41044, str(config_id))
    return way


def get_contact_way(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """One contact way's full configuration."""
    way = _way(state, call.body)
    data: dict[str, Any] = {
        "config_id": way.config_id,
        "type": way.type,
        "scene": way.scene,
        "remark": way.remark,
        "skip_verify": way.skip_verify,
        "state": way.state,
        "user": list(way.user),
        "party": list(way.party),
        "is_temp": way.is_temp,
    }
    if way.style is not None:
        data["style"] = way.style
    if way.qr_code:
        data["qr_code"] = way.qr_code
    if way.is_temp:
        data.update(expires_in=way.expires_in, chat_expires_in=way.chat_expires_in, unionid=way.unionid)
        if way.conclusions is not None:
            data["conclusions"] = way.conclusions
    return ok(contact_way=data)


def update_contact_way(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Update; type and scene are immutable and ignored."""
    way = _way(state, call.body)
    snapshot = ContactWay(**vars(way))
    try:
        _apply(state, way, call.body)
    except ApiError:
        vars(way).update(vars(snapshot))  # a refused update changes nothing
        raise
    return ok()


def del_contact_way(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Delete a contact way (its quota slot is not given back: UNCONFIRMED either way)."""
    way = _way(state, call.body)
    del state.world.contact_ways[way.config_id]
    return ok()


def list_contact_way(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Config ids created in [start_time, end_time] (default last 90 days), cursor paging.

    Temporary-session ways are not listed, nor ways made before 2021-07-10 (p/92572).
    """
    body = call.body
    now = int(state.clock.timestamp())
    start = int_field(body, "start_time", now - LIST_DEFAULT_DAYS * 86400)
    end = int_field(body, "end_time", now)
    if start > end:
        raise ApiError(INVALID_PARAM, "start_time must not be after end_time")
    max_days = state.options.list_contact_way_max_span_days
    if max_days is not None and end - start > max_days * 86400:
        raise ApiError(INVALID_PARAM, f"start_time..end_time spans more than {max_days} days")
    limit = int_field(body, "limit", 100)
    if not 1 <= limit <= 1000:
        raise ApiError(INVALID_PARAM, "limit must be 1..1000")
    cursor = body.get("cursor") or "0"
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise ApiError(INVALID_PARAM, "invalid cursor")
    start = max(start, LIST_FLOOR)
    ways = [w for w in state.world.contact_ways.values() if start <= w.created_at <= end and not w.is_temp]
    offset = int(cursor)
    page = ways[offset : offset + limit]
    payload: dict[str, Any] = {"contact_way": [{"config_id": w.config_id} for w in page]}
    if offset + limit < len(ways):
        payload["next_cursor"] = str(offset + limit)
    return ok(**payload)


ROUTES = [
    ApiSpec("/cgi-bin/externalcontact/add_contact_way", "POST", add_contact_way, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/get_contact_way", "POST", get_contact_way, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/update_contact_way", "POST", update_contact_way, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/del_contact_way", "POST", del_contact_way, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/list_contact_way", "POST", list_contact_way, CONTACT_APPS),
]
