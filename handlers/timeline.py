"""Timeline: every customer-facing event on the customer's timeline; customer and follow rows kept current.

Triggers: customer-contact events (add, half add, edit, delete by customer, delete by guide,
transfer, transfer failure, archive consent), customer-group member changes, kf events and
chat-archive messages (the customer's own, and a guide's 1:1 messages to the customer).
Actions: UpsertCustomer, UpsertFollow, EndFollow, RecordTimeline, RefreshCustomer.
Idempotency: timeline entries are keyed by the event's dedup key (plus the member for group
events), follow rows by (customer, guide); a retried or replayed event changes nothing twice.
Config: none.
"""

from __future__ import annotations

from bot import actions as act
from bot import events as ev
from bot.actions import Action
from bot.deps import Deps
from bot.router import Router

router = Router("timeline")

# Customers' external_userids start with wm / wo; members' userids do not (wecom-api.md §0).
_EXTERNAL_PREFIXES = ("wm", "wo")

_DELETE_REASONS = {"DELETE_BY_TRANSFER": "transferred"}
_TRANSFER_FAILURES = {"customer_refused": "客户拒绝", "customer_limit_exceed": "接替成员客户数已达上限"}


def _when(event: ev.Event, deps: Deps) -> float:
    return float(event.create_time) if event.create_time else deps.clock.timestamp()


def contact_actions(event: ev.ContactEvent, at: float) -> list[Action]:
    """Customer, follow and timeline changes for one customer-contact event."""
    cust, guide, key = event.external_userid, event.userid, event.dedup_key
    refresh = act.RefreshCustomer(cust, reason_key=key)
    match event:
        case ev.ContactAdded(state=state) | ev.ContactHalfAdded(state=state):
            half = isinstance(event, ev.ContactHalfAdded)
            channel = f"（渠道 {state}）" if state else ""
            summary = f"{'免验证添加' if half else '添加'}导购 {guide}{channel}"
            return [
                act.UpsertCustomer(cust, first_state=state, seen_at=at),
                act.UpsertFollow(cust, guide, state=state, added_at=at, status="half" if half else "active"),
                act.RecordTimeline(
                    cust, "contact_added", summary, at, key, {"userid": guide, "state": state}
                ),
                refresh,
            ]
        case ev.ContactEdited():
            return [
                act.RecordTimeline(cust, "contact_edited", f"导购 {guide} 修改了备注或标签", at, key),
                refresh,
            ]
        case ev.ContactDeletedByGuide(source=source):
            reason = _DELETE_REASONS.get(source, "deleted_by_guide")
            summary = (
                f"导购 {guide} 的客户已转接给其他成员"
                if reason == "transferred"
                else f"导购 {guide} 删除了客户"
            )
            out: list[Action] = [
                act.EndFollow(cust, guide, reason=reason, ended_at=at),
                act.RecordTimeline(cust, reason, summary, at, key, {"userid": guide, "source": source}),
            ]
            if reason == "transferred":
                out.append(refresh)  # learn the takeover guide from externalcontact/get
            return out
        case ev.ContactDeletedByCustomer():
            return [
                act.EndFollow(cust, guide, reason="deleted_by_customer", ended_at=at),
                act.RecordTimeline(
                    cust, "deleted_by_customer", f"客户删除了导购 {guide}", at, key, {"userid": guide}
                ),
            ]
        case ev.ContactTransferFailed(fail_reason=why):
            summary = f"转接给 {guide} 失败：{_TRANSFER_FAILURES.get(why, why)}"
            return [
                act.RecordTimeline(
                    cust, "transfer_failed", summary, at, key, {"userid": guide, "reason": why}
                )
            ]
        case ev.ArchiveConsent():
            return [act.RecordTimeline(cust, "archive_consent", "同意了会话存档", at, key, {"userid": guide})]
    return [act.RecordTimeline(cust, event.kind, event.kind, at, key)]


def group_actions(event: ev.GroupUpdated, at: float) -> list[Action]:
    """Timeline entries for customers who joined or left a customer group."""
    if event.update_detail not in ("add_member", "del_member"):
        return []
    joined = event.update_detail == "add_member"
    if joined:
        how = "扫码" if event.join_scene == 3 else "受邀"
        summary = f"{how}加入客户群 {event.chat_id}"
    else:
        how = "被移出" if event.quit_scene == 1 else "退出"
        summary = f"{how}客户群 {event.chat_id}"
    kind = "group_joined" if joined else "group_left"
    out: list[Action] = []
    for member in event.mem_change_list:
        if not member.startswith(_EXTERNAL_PREFIXES):
            continue
        data = {"chat_id": event.chat_id, "scene": event.join_scene if joined else event.quit_scene}
        if joined:
            out.append(act.UpsertCustomer(member, seen_at=at))
        out.append(act.RecordTimeline(member, kind, summary, at, f"{event.dedup_key}:{member}", data))
    return out


def kf_actions(event: ev.KfEvent, at: float) -> list[Action]:
    """Timeline entries for what happened in 微信客服."""
    cust, key = event.external_userid, event.dedup_key
    if not cust:
        return []
    base = {"open_kfid": event.open_kfid, "msgid": event.msgid}
    match event:
        case ev.KfCustomerMessage(msg_type=msg_type, content=content):
            return [
                act.UpsertCustomer(cust, seen_at=at),
                act.RecordTimeline(
                    cust,
                    "kf_message",
                    f"在微信客服发来{_MSG_NAMES.get(msg_type, '消息')}",
                    at,
                    key,
                    {**base, "msgtype": msg_type, "text": content},
                ),
            ]
        case ev.KfSessionEntered(scene=scene):
            return [
                act.UpsertCustomer(cust, seen_at=at),
                act.RecordTimeline(
                    cust, "kf_session_entered", "进入微信客服会话", at, key, {**base, "scene": scene}
                ),
            ]
        case ev.KfServicerMessage(servicer_userid=servicer, content=content):
            return [
                act.RecordTimeline(
                    cust,
                    "kf_servicer_message",
                    f"客服 {servicer} 回复了客户",
                    at,
                    key,
                    {**base, "servicer": servicer, "text": content},
                )
            ]
        case ev.KfSessionStatusChanged(change_type=change, new_servicer_userid=servicer):
            summary = _SESSION_CHANGES.get(change, "客服会话状态变化").format(servicer=servicer)
            return [
                act.RecordTimeline(cust, "kf_session_changed", summary, at, key, {**base, "change": change})
            ]
        case ev.KfSendFailed(fail_type=fail_type):
            return [
                act.RecordTimeline(
                    cust, "kf_send_failed", "客服消息未送达", at, key, {**base, "fail_type": fail_type}
                )
            ]
    return []


def archive_actions(event: ev.ArchiveMessage, at: float) -> list[Action]:
    """Timeline entries for an archived chat message: the customer's own, or a guide's 1:1 message to them."""
    if event.action != "send":
        return []
    where = f"在客户群 {event.roomid} " if event.roomid else ""
    what = _MSG_NAMES.get(event.msg_type, "消息")
    data = {
        "msgid": event.msgid,
        "msgtype": event.msg_type,
        "text": event.content,
        "roomid": event.roomid,
        "from": event.from_id,
    }
    if event.from_customer:
        cust = event.from_id
        return [
            act.UpsertCustomer(cust, seen_at=at),
            act.RecordTimeline(cust, "chat_message", f"{where}发来{what}", at, event.dedup_key, data),
        ]
    if event.roomid:
        return []  # a guide speaking in a group is not an entry on every member's timeline
    return [
        act.RecordTimeline(
            cust, "guide_message", f"导购 {event.from_id} 发来{what}", at, f"{event.dedup_key}:{cust}", data
        )
        for cust in event.tolist
        if cust.startswith(_EXTERNAL_PREFIXES)
    ]


_MSG_NAMES = {
    "text": "文字消息",
    "image": "图片",
    "voice": "语音",
    "video": "视频",
    "file": "文件",
    "location": "位置",
}
_SESSION_CHANGES = {
    1: "客服 {servicer} 从待接入池接入会话",
    2: "会话转给客服 {servicer}",
    3: "客服会话已结束",
}


@router.on(ev.ContactEvent)
def on_contact(event: ev.ContactEvent, deps: Deps) -> list[Action]:
    """Customer-contact events."""
    return contact_actions(event, _when(event, deps))


@router.on(ev.GroupUpdated)
def on_group(event: ev.GroupUpdated, deps: Deps) -> list[Action]:
    """Customer-group member changes."""
    return group_actions(event, _when(event, deps))


@router.on(ev.ArchiveMessage)
def on_archive(event: ev.ArchiveMessage, deps: Deps) -> list[Action]:
    """Chat-archive messages (会话内容存档)."""
    return archive_actions(event, event.msgtime / 1000 if event.msgtime else deps.clock.timestamp())


@router.on(ev.KfEvent)
def on_kf(event: ev.KfEvent, deps: Deps) -> list[Action]:
    """微信客服 messages and events."""
    return kf_actions(event, _when(event, deps))
