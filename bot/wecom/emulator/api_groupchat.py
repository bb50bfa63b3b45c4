"""Customer groups (客户群, §6.1): externalcontact/groupchat/list and groupchat/get.

Groups are made and changed only by the client-side simulations (`simulate_group_event`, which
also sends the change_external_chat callback); these APIs read them. A group is a dict in
`world.groups`: owner, members, member_version, and optionally name, create_time, notice and
`joined` (member -> join_time, join_scene). Sources: p/92120 (list), p/92122 / p/96338 (get).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator import groupmsg_model
from bot.wecom.emulator.api_contact import CONTACT_APPS
from bot.wecom.emulator.common import INVALID_PARAM, ApiCall, ApiError, ApiSpec, int_field, ok, require_str

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

CHAT_GONE = 40050  # "invalid chatid" (p/90313): unknown or dismissed group
LIST_LIMIT_MAX = 1000
OWNER_FILTER_MAX = 100
VISIBLE_MEMBERS_MAX = 1000  # groupchat/list without owner_filter over this many visible members -> 81017
# Callback JoinScene (0 invited, 3 QR) -> groupchat/get join_scene (1 direct invite, 2 link, 3 QR).
JOIN_SCENES = {0: 1, 3: 3}
EXTERNAL_PREFIXES = ("wm", "wo")


def member_type(member_id: str) -> int:
    """1 a member of the corp, 2 an external contact (wecom-api.md §0 id shapes)."""
    return 2 if member_id.startswith(EXTERNAL_PREFIXES) else 1


def _member_json(
    state: EmulatorState, group: dict[str, Any], member_id: str, need_name: bool
) -> dict[str, Any]:
    joined = (group.get("joined") or {}).get(member_id, {})
    kind = member_type(member_id)
    data: dict[str, Any] = {
        "userid": member_id,
        "type": kind,
        "join_time": int(joined.get("join_time", group.get("create_time", 0))),
        "join_scene": JOIN_SCENES.get(int(joined.get("join_scene", 0)), 1),
        "group_nickname": "",
    }
    if member_id != group.get("owner") and kind == 2 and joined.get("join_scene", 0) == 0:
        data["invitor"] = {"userid": group.get("owner", "")}
    if need_name:
        if kind == 2:
            customer = state.world.customers.get(member_id)
            data["name"] = customer.name if customer else "微信用户"
        else:
            staff = state.world.staff.get(member_id)
            data["name"] = staff.name if staff else member_id
    return data


def groupchat_get(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """One group with its members (type 1/2, join_time, join_scene) and member_version."""
    chat_id = require_str(call.body, "chat_id")
    group = state.world.groups.get(chat_id)
    if group is None:
        raise ApiError(CHAT_GONE, chat_id)
    need_name = int_field(call.body, "need_name", 0) == 1
    return ok(
        group_chat={
            "chat_id": chat_id,
            "name": group.get("name", ""),
            "owner": group.get("owner", ""),
            "create_time": int(group.get("create_time", 0)),
            "notice": group.get("notice", ""),
            "member_list": [_member_json(state, group, m, need_name) for m in group.get("members", [])],
            "admin_list": [],
            "member_version": group.get("member_version", ""),
        }
    )


def groupchat_list(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Groups (status 0) of the owners in owner_filter, paged by cursor; limit 1-1000 is required."""
    body = call.body
    if body.get("limit") in (None, ""):
        raise ApiError(INVALID_PARAM, "limit is required")
    limit = int_field(body, "limit", 0)
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ApiError(INVALID_PARAM, f"limit must be 1..{LIST_LIMIT_MAX}")
    owner_filter = body.get("owner_filter") or {}
    owners = owner_filter.get("userid_list") if isinstance(owner_filter, dict) else None
    if owners is not None and (not isinstance(owners, list) or len(owners) > OWNER_FILTER_MAX):
        raise ApiError(INVALID_PARAM, f"owner_filter.userid_list: a list of at most {OWNER_FILTER_MAX}")
    if not owners and len(state.world.staff) > VISIBLE_MEMBERS_MAX:
        raise ApiError(81017)
    status_filter = int_field(body, "status_filter", 0)
    chats = [
        chat_id
        for chat_id, group in state.world.groups.items()
        if (not owners or group.get("owner") in owners) and status_filter == 0
    ]
    chunk, next_cursor = groupmsg_model.page(chats, body.get("cursor"), limit)
    return ok(group_chat_list=[{"chat_id": c, "status": 0} for c in chunk], next_cursor=next_cursor)


ROUTES = [
    ApiSpec("/cgi-bin/externalcontact/groupchat/list", "POST", groupchat_list, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/groupchat/get", "POST", groupchat_get, CONTACT_APPS),
]
