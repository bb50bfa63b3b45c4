"""Typed events, built once at the edge; nothing past `bot/wecom/callback.py` sees XML or dicts.

Every event has a `RouteKey` (msg_type, event, change_type) the router matches on, a `dedup_key`
that identifies one delivery from WeCom (a retry has the same key), and a `partition` — the
customer (or group) whose events must be handled in order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple


class RouteKey(NamedTuple):
    """What the router matches on: (msg_type, event, change_type)."""

    msg_type: str
    event: str = ""
    change_type: str = ""

    def __str__(self) -> str:
        return "/".join(filter(None, self))


def digest(*parts: object) -> str:
    """Short stable hash of `parts` (for dedup keys that must not collide)."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something WeCom told us."""

    app: str
    create_time: int = 0
    route_key: RouteKey
    dedup_key: str
    partition: str = "sys"
    customer_facing: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        """The event's class name, e.g. `ContactAdded`."""
        return type(self).__name__


# --- §3 app messages and events (staff talking to the self-built app) -------------------------


@dataclass(frozen=True, kw_only=True)
class StaffMessage(Event):
    """A member sent a message to the app (text, image, voice, video, location, link)."""

    msg_id: str
    from_userid: str
    agent_id: str = ""
    msg_type: str
    content: str = ""
    media_id: str = ""
    pic_url: str = ""
    title: str = ""
    description: str = ""
    url: str = ""
    location: tuple[float, float] | None = None
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class AppEvent(Event):
    """A member did something in the app: subscribe, enter_agent, menu click, scan, location..."""

    name: str
    from_userid: str
    agent_id: str = ""
    event_key: str = ""
    detail: tuple[tuple[str, str], ...] = ()


# --- §4.1 change_external_contact --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ContactEvent(Event):
    """Base of customer-contact events: a guide (UserID) and a customer (ExternalUserID)."""

    userid: str
    external_userid: str
    customer_facing: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class ContactAdded(ContactEvent):
    """add_external_contact: a customer added a guide (State = channel code)."""

    state: str = ""
    welcome_code: str = ""


@dataclass(frozen=True, kw_only=True)
class ContactHalfAdded(ContactEvent):
    """add_half_external_contact: added without verification, guide has not added back yet."""

    state: str = ""
    welcome_code: str = ""


@dataclass(frozen=True, kw_only=True)
class ContactEdited(ContactEvent):
    """edit_external_contact: the guide edited remark, description or tags."""


@dataclass(frozen=True, kw_only=True)
class ContactDeletedByGuide(ContactEvent):
    """del_external_contact: the guide deleted the customer (Source=DELETE_BY_TRANSFER on 在职继承)."""

    source: str = ""


@dataclass(frozen=True, kw_only=True)
class ContactDeletedByCustomer(ContactEvent):
    """del_follow_user: the customer deleted or blocked the guide."""


@dataclass(frozen=True, kw_only=True)
class ContactTransferFailed(ContactEvent):
    """transfer_fail: the customer refused the transfer or the takeover guide is full."""

    fail_reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ArchiveConsent(ContactEvent):
    """msg_audit_approved: the customer agreed to chat archiving."""

    welcome_code: str = ""


# --- §4.2 change_external_chat -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GroupEvent(Event):
    """Base of customer-group events."""

    chat_id: str
    customer_facing: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class GroupCreated(GroupEvent):
    """A customer group was created."""


@dataclass(frozen=True, kw_only=True)
class GroupUpdated(GroupEvent):
    """Members joined or left, owner, name or notice changed."""

    update_detail: str
    join_scene: int | None = None
    quit_scene: int | None = None
    mem_change_cnt: int = 0
    mem_change_list: tuple[str, ...] = ()
    last_mem_ver: str = ""
    cur_mem_ver: str = ""


@dataclass(frozen=True, kw_only=True)
class GroupDismissed(GroupEvent):
    """The owner dismissed the group."""


# --- §4.3 change_external_tag -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CorpTagChanged(Event):
    """A corp tag or tag group was created, updated, deleted or re-ordered in the console."""

    change_type: str
    tag_id: str = ""
    tag_type: str = ""
    strategy_id: str = ""


# --- §8 微信客服 ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KfMessagesWaiting(Event):
    """kf_msg_or_event: new messages or events wait in kf/sync_msg for this account."""

    open_kfid: str
    token: str


@dataclass(frozen=True, kw_only=True)
class KfEvent(Event):
    """Base of what kf/sync_msg returns: one item of msg_list."""

    msgid: str
    open_kfid: str
    external_userid: str = ""
    send_time: int = 0
    customer_facing: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class KfCustomerMessage(KfEvent):
    """A customer wrote to 微信客服 (origin 3)."""

    msg_type: str
    content: str = ""
    menu_id: str = ""
    media_id: str = ""
    payload: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class KfServicerMessage(KfEvent):
    """A servicer wrote to the customer from the WeCom client (origin 5)."""

    servicer_userid: str = ""
    msg_type: str = "text"
    content: str = ""


@dataclass(frozen=True, kw_only=True)
class KfSessionEntered(KfEvent):
    """enter_session: the customer opened the kf chat (welcome_code valid 20 s)."""

    scene: str = ""
    scene_param: str = ""
    welcome_code: str = ""


@dataclass(frozen=True, kw_only=True)
class KfSendFailed(KfEvent):
    """msg_send_fail: a message we sent did not reach the customer."""

    fail_msgid: str = ""
    fail_type: int = 0


@dataclass(frozen=True, kw_only=True)
class KfServicerStatusChanged(KfEvent):
    """servicer_status_change: a servicer started (1) or stopped (2) receiving."""

    servicer_userid: str = ""
    status: int = 0


@dataclass(frozen=True, kw_only=True)
class KfSessionStatusChanged(KfEvent):
    """session_status_change: taken from the pool (1), transferred (2) or ended (3)."""

    change_type: int = 0
    old_servicer_userid: str = ""
    new_servicer_userid: str = ""
    msg_code: str = ""


@dataclass(frozen=True, kw_only=True)
class KfOtherEvent(KfEvent):
    """Any other kf event (recalls, reject switch, ...), kept with its fields."""

    event_type: str
    payload: tuple[tuple[str, str], ...] = ()


# --- 会话内容存档 (chat archive) ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ArchiveMessagesWaiting(Event):
    """msgaudit_notify: new messages wait in the chat archive (pulled from the stored seq)."""

    agent_id: str = ""


@dataclass(frozen=True, kw_only=True)
class ArchiveMessage(Event):
    """One decrypted chat-archive message (msgid, action, from, tolist, roomid, msgtime, msgtype, text).

    `from_id` is a member's userid (a guide) or a customer's external_userid (wm/wo...); only the
    latter are the customer's own words. `roomid` is set for group chats.
    """

    msgid: str
    action: str = "send"
    from_id: str = ""
    tolist: tuple[str, ...] = ()
    roomid: str = ""
    msgtime: int = 0
    """Milliseconds since the epoch, as the archive gives it."""
    msg_type: str = ""
    content: str = ""
    customer_facing: ClassVar[bool] = True

    @property
    def from_customer(self) -> bool:
        """True when a customer (external_userid wm/wo...) wrote it, not a member."""
        return is_external_userid(self.from_id)


EXTERNAL_PREFIXES = ("wm", "wo")
"""Customers' external_userids start with wm / wo; members' userids do not (wecom-api.md §0)."""


def is_external_userid(value: str) -> bool:
    """True for a customer's external_userid."""
    return value.startswith(EXTERNAL_PREFIXES)


# --- smart robot (智能机器人, JSON) ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RobotEventBase(Event):
    """What every smart-robot callback carries: who, where, and where to answer."""

    msgid: str
    aibotid: str = ""
    chatid: str = ""
    chattype: str = "single"
    from_userid: str = ""
    response_url: str = ""


@dataclass(frozen=True, kw_only=True)
class RobotMessage(RobotEventBase):
    """Someone wrote to the smart robot, 1:1 or @-mentioning it in a group."""

    msg_type: str = "text"
    content: str = ""


@dataclass(frozen=True, kw_only=True)
class RobotEvent(RobotEventBase):
    """A smart-robot event (enter_chat, template_card_event, feedback_event, ...)."""

    event_type: str = ""


# --- Siyu's own edges: the shop's order webhook and the click redirect -----------------------------


@dataclass(frozen=True, kw_only=True)
class OrderPaid(Event):
    """The shop reported a paid order (POST /api/events/order); one per order id however often resent."""

    order_id: str
    external_userid: str
    amount_cents: int = 0
    paid_at: float
    """Epoch seconds."""
    items: tuple[dict[str, Any], ...] = ()
    customer_facing: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class LinkClicked(Event):
    """A customer opened a tracked SOP link (/r/<token>); reloads within a minute count once."""

    token: str
    enrollment_id: int
    external_userid: str
    step_id: str
    clicked_at: float
    customer_facing: ClassVar[bool] = True


# --- anything else -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event this version does not know; stored and acknowledged, never dropped."""

    fields: tuple[tuple[str, str], ...] = field(default_factory=tuple)


CUSTOMER_FACING: tuple[type[Event], ...] = (ContactEvent, GroupEvent, KfEvent, ArchiveMessage)
