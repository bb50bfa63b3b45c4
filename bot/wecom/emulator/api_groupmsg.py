"""Mass sending (企业群发, §7): add_msg_template, get_groupmsg_list_v2/task/send_result, remind, cancel.

add_msg_template only creates per-member tasks (status 0); POST /emulator/simulate/groupmsg_confirm
plays a member confirming in the client, which delivers (groupmsg_model.confirm). GET /emulator/groupmsg
lists the tasks and GET /emulator/groupmsg/received what each customer or group received.
Sources: p/92135 (create), p/93338 (records), p/97610 (remind), p/97611 (cancel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.wecom.emulator import groupmsg_model as model
from bot.wecom.emulator.api_contact import CONTACT_APPS, contact_staff
from bot.wecom.emulator.api_welcome import TEXT_MAX_BYTES, check_attachments
from bot.wecom.emulator.common import (
    INVALID_PARAM,
    PARAM_EMPTY,
    ApiCall,
    ApiError,
    ApiSpec,
    int_field,
    ok,
    opt_str,
    require_str,
    str_list,
    utf8_len,
)
from bot.wecom.emulator.world import Follow, GroupMsg, GroupMsgSend, World

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

MAX_CUSTOMERS = 10_000
MAX_CHATS = 2_000
MAX_TAGS_PER_FILTER = 100
LIST_SPAN_SECONDS = 31 * 86400  # get_groupmsg_list_v2: start..end spans at most one month
REMINDS_PER_DAY = 3  # remind_groupmsg_send: ≤3 per task per 24 h -> 41094
CHAT_TYPES = ("single", "group")

Targets = tuple[list[tuple[str, str]], list[str]]  # ((userid, external_userid | chat_id)...), fail_list


def _tag_filter(body: dict[str, Any]) -> list[set[str]]:
    """tag_filter.group_list as sets: OR within a set, AND across sets."""
    raw = body.get("tag_filter")
    if raw is None:
        return []
    groups = raw.get("group_list") if isinstance(raw, dict) else None
    if not isinstance(groups, list):
        raise ApiError(INVALID_PARAM, "tag_filter.group_list must be a list")
    result = []
    for group in groups:
        tags = str_list(group, "tag_list") if isinstance(group, dict) else None
        if not tags:
            raise ApiError(INVALID_PARAM, "tag_filter.group_list[].tag_list is required")
        if len(tags) > MAX_TAGS_PER_FILTER:
            raise ApiError(INVALID_PARAM, f"more than {MAX_TAGS_PER_FILTER} tags in one tag_list")
        result.append(set(tags))
    return result


def _latest_follow(world: World, external_userid: str) -> Follow | None:
    # The doc pushes the task to the member who last interacted with the customer; the emulator does
    # not model interaction, so the most recently added follower stands in for it.
    follows = world.follows_of_customer(external_userid)
    return follows[-1] if follows else None


def _customer_targets(state: EmulatorState, sender: str | None, body: dict[str, Any]) -> Targets:
    ids = str_list(body, "external_userid")
    if len(ids) > MAX_CUSTOMERS:
        raise ApiError(INVALID_PARAM, f"more than {MAX_CUSTOMERS} external_userid")
    if not ids and sender is None:
        raise ApiError(PARAM_EMPTY, "external_userid and sender are both empty")
    world, fail_list = state.world, []
    if ids:
        follows = []
        for ext in dict.fromkeys(ids):
            follow = world.follows.get((sender, ext)) if sender else _latest_follow(world, ext)
            if follow is None:
                fail_list.append(ext)  # unknown, or not a customer of the sender
            else:
                follows.append(follow)
    else:
        assert sender is not None
        follows = world.follows_of_staff(sender)
    tag_sets = _tag_filter(body)
    targets = [
        (f.userid, f.external_userid) for f in follows if all(tags & set(f.tag_ids) for tags in tag_sets)
    ]
    return targets, fail_list


def _group_targets(state: EmulatorState, sender: str | None, body: dict[str, Any]) -> Targets:
    if sender is None:
        raise ApiError(PARAM_EMPTY, "sender is required for chat_type group")
    chat_ids = str_list(body, "chat_id_list")
    if len(chat_ids) > MAX_CHATS:
        raise ApiError(INVALID_PARAM, f"more than {MAX_CHATS} chat_id_list")
    groups = state.world.groups
    owned = [c for c, g in groups.items() if g.get("owner") == sender]
    if not chat_ids:
        return [(sender, c) for c in owned], []
    # The doc describes fail_list for customers only; invalid chat ids are reported there too.
    wanted = list(dict.fromkeys(chat_ids))
    return [(sender, c) for c in wanted if c in owned], [c for c in wanted if c not in owned]


def add_msg_template(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Create a mass-send task; nothing is delivered until each member confirms."""
    body = call.body
    chat_type = body.get("chat_type") or "single"
    if chat_type not in CHAT_TYPES:
        raise ApiError(INVALID_PARAM, "chat_type must be single or group")
    sender = opt_str(body, "sender") or None
    if sender is not None:
        contact_staff(state.world, sender)
    text = body.get("text")
    if text is not None and not isinstance(text, dict):
        raise ApiError(INVALID_PARAM, "text must be an object")
    content = (text or {}).get("content", "")
    if not isinstance(content, str) or utf8_len(content) > TEXT_MAX_BYTES:
        raise ApiError(45002, "text.content over 4000 bytes")
    attachments = body.get("attachments") or []
    check_attachments(state, attachments)
    if not content and not attachments:
        raise ApiError(PARAM_EMPTY, "text and attachments are both empty")
    if chat_type == "group":
        targets, fail_list = _group_targets(state, sender, body)
    else:
        targets, fail_list = _customer_targets(state, sender, body)
    if not targets:
        raise ApiError(41048)
    msg = GroupMsg(
        msgid=state.ids.group_msgid(),
        chat_type=chat_type,
        create_time=int(state.clock.timestamp()),
        text={"content": content} if content else None,
        attachments=list(attachments),
        allow_select=bool(body.get("allow_select", False)),
        sender=sender or "",
        sends=[GroupMsgSend(userid=u, target=t) for u, t in targets],
    )
    state.world.group_msgs[msg.msgid] = msg
    return ok(fail_list=fail_list, msgid=msg.msgid)


def _limit(body: dict[str, Any], default: int, maximum: int) -> int:
    limit = int_field(body, "limit", default)
    if not 1 <= limit <= maximum:
        raise ApiError(INVALID_PARAM, f"limit must be 1..{maximum}")
    return limit


def get_groupmsg_list_v2(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Tasks of one chat_type created in [start_time, end_time] (≤1 month), newest last."""
    body = call.body
    chat_type = require_str(body, "chat_type")
    if chat_type not in CHAT_TYPES:
        raise ApiError(INVALID_PARAM, "chat_type must be single or group")
    for key in ("start_time", "end_time"):
        if body.get(key) in (None, ""):
            raise ApiError(PARAM_EMPTY, f"{key} is required")
    start, end = int_field(body, "start_time", 0), int_field(body, "end_time", 0)
    if end < start or end - start > LIST_SPAN_SECONDS:
        raise ApiError(INVALID_PARAM, "end_time must be after start_time, at most one month later")
    filter_type = int_field(body, "filter_type", 2)
    if filter_type not in (0, 1, 2):
        raise ApiError(INVALID_PARAM, "filter_type must be 0, 1 or 2")
    creator = opt_str(body, "creator")
    limit = _limit(body, 50, 100)
    # Every task here is created by the API: create_type 0 (corp), no creator.
    found = [
        m
        for m in state.world.group_msgs.values()
        if m.chat_type == chat_type and start <= m.create_time <= end and filter_type != 1 and not creator
    ]
    found.sort(key=lambda m: m.create_time)
    chunk, next_cursor = model.page(found, body.get("cursor"), limit)
    items = []
    for m in chunk:
        item: dict[str, Any] = {"msgid": m.msgid, "create_time": m.create_time, "create_type": 0}
        if m.text:
            item["text"] = m.text
        if m.attachments:
            item["attachments"] = m.attachments
        items.append(item)
    return ok(next_cursor=next_cursor, group_msg_list=items)


def get_groupmsg_task(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Members of a task and whether each has sent (0 not sent, 2 sent)."""
    msg = model.lookup(state, call.body.get("msgid"))
    model.check_dispatched(state, msg)
    limit = _limit(call.body, 500, 1000)
    chunk, next_cursor = model.page(msg.members(), call.body.get("cursor"), limit)
    return ok(next_cursor=next_cursor, task_list=[model.task_json(msg, u) for u in chunk])


def get_groupmsg_send_result(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """One member's recipients and their status (0 not sent, 1 sent, 2 not a friend, 3 over the cap)."""
    msg = model.lookup(state, call.body.get("msgid"))
    userid = contact_staff(state.world, call.body.get("userid")).userid
    model.check_dispatched(state, msg)
    limit = _limit(call.body, 500, 1000)
    sends = [s for s in msg.sends if s.userid == userid]
    chunk, next_cursor = model.page(sends, call.body.get("cursor"), limit)
    return ok(next_cursor=next_cursor, send_list=[model.send_json(msg, s) for s in chunk])


def remind_groupmsg_send(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Notify the members again: ≤3 per task in any 24 h (41094); 41093 once cancelled."""
    msg = model.lookup(state, call.body.get("msgid"))
    if msg.cancelled:
        raise ApiError(41093)
    now = state.clock.timestamp()
    if sum(1 for at in msg.reminders if now - at < 86400) >= REMINDS_PER_DAY:
        raise ApiError(41094)
    msg.reminders.append(now)
    return ok()


def cancel_groupmsg_send(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Stop the parts members have not sent; 41093 when already cancelled."""
    msg = model.lookup(state, call.body.get("msgid"))
    if msg.cancelled:
        raise ApiError(41093)
    msg.cancelled = True
    return ok()


ROUTES = [
    ApiSpec("/cgi-bin/externalcontact/add_msg_template", "POST", add_msg_template, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/get_groupmsg_list_v2", "POST", get_groupmsg_list_v2, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/get_groupmsg_task", "POST", get_groupmsg_task, CONTACT_APPS),
    ApiSpec(
        "/cgi-bin/externalcontact/get_groupmsg_send_result", "POST", get_groupmsg_send_result, CONTACT_APPS
    ),
    ApiSpec("/cgi-bin/externalcontact/remind_groupmsg_send", "POST", remind_groupmsg_send, CONTACT_APPS),
    ApiSpec("/cgi-bin/externalcontact/cancel_groupmsg_send", "POST", cancel_groupmsg_send, CONTACT_APPS),
]


def routes(state: EmulatorState) -> list[web.RouteDef]:
    """GET /emulator/groupmsg (every task) and GET /emulator/groupmsg/received (every delivery)."""

    async def tasks(request: web.Request) -> web.Response:
        return web.json_response([model.msg_json(m) for m in state.world.group_msgs.values()])

    async def received(request: web.Request) -> web.Response:
        return web.json_response(state.world.group_messages)

    return [web.get("/emulator/groupmsg", tasks), web.get("/emulator/groupmsg/received", received)]
