"""Customer APIs: externalcontact/get, list, get_follow_user_list, batch/get_by_user, remark (§5.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.common import INVALID_PARAM, ApiCall, ApiError, ApiSpec, int_field, ok, opt_str
from bot.wecom.emulator.world import Customer, Follow, Staff, World

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

CONTACT_APPS = frozenset({"contact"})


def contact_staff(world: World, userid: Any) -> Staff:
    """A member with 客户联系 enabled: 40003 missing/unknown, 84074 without permission."""
    if not userid or not isinstance(userid, str):
        raise ApiError(40003, "userid is required")
    staff = world.staff.get(userid)
    if staff is None:
        raise ApiError(40003, userid)
    if not staff.contact_enabled:
        raise ApiError(84074, userid)
    return staff


def customer_of(world: World, external_userid: Any) -> Customer:
    """A known customer: 41035 missing, 40096 unknown."""
    if not external_userid or not isinstance(external_userid, str):
        raise ApiError(41035)
    customer = world.customers.get(external_userid)
    if customer is None:
        raise ApiError(40096, external_userid)
    return customer


def follow_of(world: World, userid: Any, external_userid: Any) -> Follow:
    """The member ↔ customer relation, or 84061."""
    contact_staff(world, userid)
    customer_of(world, external_userid)
    follow = world.follows.get((userid, external_userid))
    if follow is None:
        raise ApiError(84061)
    return follow


def customer_json(customer: Customer) -> dict[str, Any]:
    """`external_contact` object."""
    data: dict[str, Any] = {
        "external_userid": customer.external_userid,
        "name": customer.name,
        "avatar": customer.avatar,
        "type": customer.type,
        "gender": customer.gender,
    }
    if customer.unionid:
        data["unionid"] = customer.unionid
    if customer.type == 2:
        data["corp_name"] = customer.corp_name
    return data


def follow_json(world: World, follow: Follow, *, tag_ids_only: bool = False) -> dict[str, Any]:
    """`follow_user` item (get) or `follow_info` (batch/get_by_user: tag ids only)."""
    data: dict[str, Any] = {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
        "remark_corp_name": follow.remark_corp_name,
        "remark_mobiles": list(follow.remark_mobiles),
        "add_way": follow.add_way,
        "oper_userid": follow.oper_userid or follow.external_userid,
    }
    if follow.state:
        data["state"] = follow.state
    live = [t for t in (world.tag(i) for i in follow.tag_ids) if t is not None and not t.deleted]
    if tag_ids_only:
        data["tag_id"] = [t.id for t in live]
    else:
        data["tags"] = [
            {
                "group_name": world.tag_groups[t.group_id].group_name,
                "tag_name": t.name,
                "type": 1,
                "tag_id": t.id,
            }
            for t in live
        ]
    return data


def get(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """GET externalcontact/get?external_userid=."""
    world = state.world
    customer = customer_of(world, call.query.get("external_userid"))
    follows = world.follows_of_customer(customer.external_userid)
    if not follows:
        raise ApiError(84061)
    return ok(external_contact=customer_json(customer), follow_user=[follow_json(world, f) for f in follows])


def list_(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """GET externalcontact/list?userid=."""
    staff = contact_staff(state.world, call.query.get("userid"))
    return ok(external_userid=[f.external_userid for f in state.world.follows_of_staff(staff.userid)])


def get_follow_user_list(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """GET externalcontact/get_follow_user_list."""
    return ok(follow_user=[s.userid for s in state.world.staff.values() if s.contact_enabled])


def batch_get_by_user(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """POST externalcontact/batch/get_by_user {userid_list ≤100, cursor, limit ≤100 (50)}."""
    world = state.world
    userids = call.body.get("userid_list")
    if not userids or not isinstance(userids, list):
        raise ApiError(40003, "userid_list is required")
    if len(userids) > 100:
        raise ApiError(INVALID_PARAM, "userid_list has more than 100 entries")
    limit = int_field(call.body, "limit", 50)
    if not 1 <= limit <= 100:
        raise ApiError(INVALID_PARAM, "limit must be 1..100")
    for userid in userids:
        contact_staff(world, userid)
    follows = [f for u in userids for f in world.follows_of_staff(u)]
    start = _decode_cursor(call.body.get("cursor"))
    page = follows[start : start + limit]
    items = [
        {
            "external_contact": customer_json(world.customers[f.external_userid]),
            "follow_info": follow_json(world, f, tag_ids_only=True),
        }
        for f in page
    ]
    more = start + limit < len(follows)
    return ok(external_contact_list=items, next_cursor=f"C{start + limit}" if more else "")


def _decode_cursor(cursor: Any) -> int:
    if not cursor:
        return 0
    if not isinstance(cursor, str) or not cursor.startswith("C") or not cursor[1:].isdigit():
        raise ApiError(INVALID_PARAM, "invalid cursor")
    return int(cursor[1:])


def remark(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """POST externalcontact/remark; API edits never emit callbacks (p/96361)."""
    body = call.body
    follow = follow_of(state.world, body.get("userid"), body.get("external_userid"))
    new_remark = opt_str(body, "remark", max_chars=20)
    description = opt_str(body, "description", max_chars=150)
    company = opt_str(body, "remark_company", max_chars=20)
    mobiles = body.get("remark_mobiles")
    if mobiles is not None and (
        not isinstance(mobiles, list) or not all(isinstance(m, str) for m in mobiles)
    ):
        raise ApiError(INVALID_PARAM, "remark_mobiles must be a list of strings")
    if "remark_pic_mediaid" in body:
        state.check_media(body["remark_pic_mediaid"])
    if new_remark is not None:
        follow.remark = new_remark
    if description is not None:
        follow.description = description
    if company is not None:
        follow.remark_corp_name = company
    if mobiles is not None:
        follow.remark_mobiles = list(mobiles)
    return ok()


ROUTES = [
    ApiSpec("/cgi-bin/externalcontact/get", "GET", get, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/list", "GET", list_, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/get_follow_user_list", "GET", get_follow_user_list, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/batch/get_by_user", "POST", batch_get_by_user, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/remark", "POST", remark, CONTACT_APPS),
]
