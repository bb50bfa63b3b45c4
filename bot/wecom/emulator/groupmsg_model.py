"""Mass-send (企业群发) bookkeeping shared by the group-msg APIs and the confirm simulation (§7).

Nothing is delivered when a task is created: each member confirms their part in the client, and only
then does every recipient get status 1 (sent), 2 (no longer a friend / group) or 3 (over the
per-recipient cap, counted over earlier deliveries). https://developer.work.weixin.qq.com/document/path/92135
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bot.clock import SHANGHAI
from bot.wecom.emulator.common import INVALID_PARAM, ApiError
from bot.wecom.emulator.world import GroupMsg, GroupMsgSend

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

CAP_POLICIES = ("monthly_days", "4_per_month", "7_per_week", "1_per_day")
SENT, NOT_FRIEND, OVER_CAP = 1, 2, 3


def cap_period(policy: str, now: float) -> tuple[float, int]:
    """(start of the counting period containing `now`, deliveries allowed in it) for a cap policy.

    Periods are natural ones in Asia/Shanghai (day, week from Monday, month); the doc does not say
    whether "per week" is natural or rolling.
    """
    day = dt.datetime.fromtimestamp(now, SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    if policy == "1_per_day":
        return day.timestamp(), 1
    if policy == "7_per_week":
        return (day - dt.timedelta(days=day.weekday())).timestamp(), 7
    month = day.replace(day=1)
    if policy == "4_per_month":
        return month.timestamp(), 4
    if policy == "monthly_days":
        return month.timestamp(), calendar.monthrange(day.year, day.month)[1]
    raise ValueError(f"unknown cap policy {policy!r}; known: {', '.join(CAP_POLICIES)}")


def over_cap(policy: str, received_at: Iterable[float], now: float) -> bool:
    """True when a recipient who received mass messages at `received_at` may not get another now."""
    start, allowed = cap_period(policy, now)
    return sum(1 for at in received_at if start <= at <= now) >= allowed


def lookup(state: EmulatorState, msgid: Any) -> GroupMsg:
    """The task: 41046 missing msgid, 41047 unknown."""
    if not msgid:
        raise ApiError(41046)
    found = state.world.group_msgs.get(msgid) if isinstance(msgid, str) else None
    if found is None:
        raise ApiError(41047, str(msgid))
    return found


def check_dispatched(state: EmulatorState, msg: GroupMsg) -> None:
    """41063 while the task is "still being dispatched" (options.groupmsg_dispatch_seconds)."""
    if state.clock.timestamp() - msg.create_time < state.options.groupmsg_dispatch_seconds:
        raise ApiError(41063)


def page(items: list[Any], cursor: Any, limit: int) -> tuple[list[Any], str]:
    """One page of `items` after the opaque `cursor`, and the next cursor ("" at the end)."""
    start = 0
    if cursor:
        if not isinstance(cursor, str) or not cursor.startswith("G") or not cursor[1:].isdigit():
            raise ApiError(INVALID_PARAM, "invalid cursor")
        start = int(cursor[1:])
    end = start + limit
    return items[start:end], f"G{end}" if end < len(items) else ""


def _still_reachable(state: EmulatorState, msg: GroupMsg, send: GroupMsgSend) -> bool:
    if msg.chat_type == "group":
        group = state.world.groups.get(send.target)
        return group is not None and group.get("owner") == send.userid
    return (send.userid, send.target) in state.world.follows


def _received_at(state: EmulatorState, target: str) -> list[float]:
    return [
        m["at"] for m in state.world.group_messages if target in (m.get("external_userid"), m.get("chat_id"))
    ]


def confirm(
    state: EmulatorState, msgid: str, userid: str, recipients: list[str] | None = None
) -> dict[str, Any]:
    """Member `userid` sends their part of task `msgid` (optionally only `recipients`, if allowed)."""
    msg = state.world.group_msgs.get(msgid)
    if msg is None:
        raise ValueError(f"unknown group msg {msgid!r}")
    if msg.cancelled:
        raise ValueError(f"group msg {msgid} was cancelled")
    if userid not in msg.members():
        raise ValueError(f"{userid!r} has no part in group msg {msgid}")
    if userid in msg.sent_by:
        raise ValueError(f"{userid} already sent group msg {msgid}")
    if recipients is not None and not msg.allow_select:
        raise ValueError("recipients can be re-selected only when allow_select is true")
    now = state.clock.timestamp()
    policy = state.options.groupmsg_cap_policy
    key = "chat_id" if msg.chat_type == "group" else "external_userid"
    for send in msg.sends:
        if send.userid != userid or (recipients is not None and send.target not in recipients):
            continue
        if not _still_reachable(state, msg, send):
            send.status = NOT_FRIEND
        elif over_cap(policy, _received_at(state, send.target), now):
            send.status = OVER_CAP
        else:
            # send_time is returned only for status 1 (p/93338).
            send.status, send.send_time = SENT, int(now)
            state.world.group_messages.append(
                {
                    "msgid": msg.msgid,
                    "userid": userid,
                    key: send.target,
                    "chat_type": msg.chat_type,
                    "text": msg.text,
                    "attachments": msg.attachments,
                    "at": now,
                }
            )
    msg.sent_by[userid] = int(now)
    sends = [s for s in msg.sends if s.userid == userid]
    return {"msgid": msgid, "userid": userid, "send_list": [send_json(msg, s) for s in sends]}


def send_json(msg: GroupMsg, send: GroupMsgSend) -> dict[str, Any]:
    """`send_list` item of get_groupmsg_send_result."""
    key = "chat_id" if msg.chat_type == "group" else "external_userid"
    data: dict[str, Any] = {key: send.target, "userid": send.userid, "status": send.status}
    if send.send_time is not None:
        data["send_time"] = send.send_time
    return data


def task_json(msg: GroupMsg, userid: str) -> dict[str, Any]:
    """`task_list` item of get_groupmsg_task: status 0 not sent, 2 sent."""
    send_time = msg.sent_by.get(userid)
    data: dict[str, Any] = {"userid": userid, "status": 0 if send_time is None else 2}
    if send_time is not None:
        data["send_time"] = send_time
    return data


def msg_json(msg: GroupMsg) -> dict[str, Any]:
    """The whole task for GET /emulator/groupmsg (tests and the demo)."""
    return {
        "msgid": msg.msgid,
        "chat_type": msg.chat_type,
        "create_time": msg.create_time,
        "sender": msg.sender,
        "text": msg.text,
        "attachments": msg.attachments,
        "allow_select": msg.allow_select,
        "cancelled": msg.cancelled,
        "reminders": len(msg.reminders),
        "task_list": [task_json(msg, u) for u in msg.members()],
        "send_list": [send_json(msg, s) for s in msg.sends],
    }
