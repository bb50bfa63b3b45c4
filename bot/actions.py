"""Actions handlers return; `bot/effects.py` performs them (state in SQL, or a WeCom call via the outbox).

Two families:
- state actions change Siyu's own tables in the same transaction that marks the event handled;
- WeCom actions become outbox rows with an idempotency key and are sent (and retried) by the outbox.
Every action is a frozen dataclass; payloads are JSON-friendly so an outbox row can be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# --- state actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """Something a handler decided."""

    is_wecom_call: ClassVar[bool] = False


@dataclass(frozen=True)
class UpsertCustomer(Action):
    """Create the customer if new; fill in known fields."""

    external_userid: str
    first_state: str = ""
    seen_at: float = 0.0


@dataclass(frozen=True)
class UpdateCustomerProfile(Action):
    """Store what externalcontact/get says about the customer."""

    external_userid: str
    name: str = ""
    avatar: str = ""
    gender: int = 0
    unionid: str = ""
    customer_type: int = 0


@dataclass(frozen=True)
class UpsertFollow(Action):
    """Create or re-activate a follow relation (customer x guide)."""

    external_userid: str
    userid: str
    state: str = ""
    added_at: float = 0.0
    status: str = "active"
    remark: str = ""
    add_way: int = 0


@dataclass(frozen=True)
class EndFollow(Action):
    """End a follow relation: deleted by the customer, by the guide, or moved by a transfer."""

    external_userid: str
    userid: str
    reason: str
    ended_at: float = 0.0


@dataclass(frozen=True)
class RecordTimeline(Action):
    """Append one entry to a customer's timeline (idempotent by `source_key`)."""

    external_userid: str
    kind: str
    summary: str
    occurred_at: float
    source_key: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordWelcomeAssignment(Action):
    """Remember which welcome script and A/B variant a customer got from a guide (first one sticks)."""

    external_userid: str
    userid: str
    script_id: str
    variant: str
    welcome_code: str
    at: float


@dataclass(frozen=True)
class Schedule(Action):
    """Create a durable timer (idempotent by `key`)."""

    key: str
    kind: str
    due_at: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelTimer(Action):
    """Cancel a pending timer."""

    key: str


@dataclass(frozen=True)
class UpdateKfSession(Action):
    """Change the bot's view of a kf session (mode, misses, the 5-message window)."""

    open_kfid: str
    external_userid: str
    at: float
    mode: str | None = None
    misses: int | None = None
    customer_wrote: bool = False
    sent: int = 0


@dataclass(frozen=True)
class RecordHandoff(Action):
    """Remember that a customer asked for a person (or the bot gave up)."""

    open_kfid: str
    external_userid: str
    reason: str
    outside_hours: bool
    at: float
    source_key: str


@dataclass(frozen=True)
class SuggestToGuide(Action):
    """A reply prepared for a guide (the sidebar shows it); optionally the guide is notified."""

    external_userid: str
    query: str
    faq_id: str
    score: float
    band: str
    reply: str
    at: float
    source_key: str
    userid: str = ""


@dataclass(frozen=True)
class TagCustomer(Action):
    """Put a tag on a customer (idempotent on customer x tag), remembering the rule and message."""

    external_userid: str
    tag: str
    group: str
    rule: str
    source_key: str
    at: float


@dataclass(frozen=True)
class SetAttribute(Action):
    """Store an attribute as what it means (latest message wins), with the rule and the words it read."""

    external_userid: str
    key: str
    value: str
    rule: str
    source_key: str
    source_text: str
    at: float


@dataclass(frozen=True)
class AddLeadScore(Action):
    """Add points to the customer's lead score once per `source_key` (a replay adds nothing)."""

    external_userid: str
    points: int
    source_key: str
    at: float


@dataclass(frozen=True)
class MarkTagsSynced(Action):
    """The customer's tags reached WeCom (mark_tag accepted them)."""

    external_userid: str
    tags: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class StoreCorpTags(Action):
    """Store corp tag ids by (group, tag) name; `complete`: tags not listed were deleted in WeCom."""

    tags: tuple[tuple[str, str, str, str], ...]
    """(group_name, tag_name, group_id, tag_id)"""
    at: float
    complete: bool = False


@dataclass(frozen=True)
class SetStage(Action):
    """Move the customer to a lifecycle stage; the reason goes on the timeline."""

    external_userid: str
    stage: str
    reason: str
    detail: str
    at: float
    source_key: str


@dataclass(frozen=True)
class NoteCustomerMessage(Action):
    """The customer wrote (kf, chat archive, robot): keeps last_message_at for the lifecycle."""

    external_userid: str
    at: float


@dataclass(frozen=True)
class SetUnsubscribed(Action):
    """The customer asked to stop marketing pushes (or to have them again)."""

    external_userid: str
    unsubscribed: bool
    at: float
    source_key: str


@dataclass(frozen=True)
class Enroll(Action):
    """Start a run of a playbook unless the customer has one going; `iteration` counts runs."""

    external_userid: str
    playbook_id: str
    step_id: str
    due_at: float
    stage: str
    at: float
    reason: str = ""
    once: bool = False
    """Only when the customer never ran the playbook before."""


@dataclass(frozen=True)
class RecordReaction(Action):
    """The customer replied or clicked: runs waiting for a reaction branch now.

    A reply reaches every run of the customer that waits; a click only the run whose link it was.
    """

    external_userid: str
    kind: str
    at: float
    enrollment_id: int | None = None


@dataclass(frozen=True)
class RecordOrder(Action):
    """A purchase from the shop, unique by its order id."""

    order_id: str
    external_userid: str
    amount_cents: int
    paid_at: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SetGroupMembers(Action):
    """The customers in a group now (from groupchat/get); absent ones have left."""

    chat_id: str
    members: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class RecordMassTask(Action):
    """A mass-send task exists in WeCom (or could not be made); later checks update its status."""

    idem_key: str
    external_userid: str
    userid: str
    at: float
    msgid: str = ""
    enrollment_id: int = 0
    step_id: str = ""
    status: str = "created"
    reminders: int | None = None
    sent_at: float | None = None


# --- WeCom actions (through the outbox) -------------------------------------------------------------


@dataclass(frozen=True)
class WeComAction(Action):
    """An action that calls WeCom; `idem_key` makes it happen at most once."""

    is_wecom_call: ClassVar[bool] = True
    kind: ClassVar[str] = ""

    @property
    def idem_key(self) -> str:
        """Deterministic idempotency key of this effect."""
        raise NotImplementedError

    @property
    def partition(self) -> str:
        """Whose sends stay in order: by default the customer the action is about, if any."""
        customer = getattr(self, "external_userid", "")
        return f"cust:{customer}" if customer else ""

    def deadline(self, now: float) -> float | None:
        """Epoch seconds after which sending is pointless (None: no deadline)."""
        return None

    def payload(self) -> dict[str, Any]:
        """JSON-friendly fields, to rebuild the action from an outbox row."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class SendWelcome(WeComAction):
    """externalcontact/send_welcome_msg with the WelcomeCode of an add event (20 s, single use)."""

    kind: ClassVar[str] = "send_welcome"
    welcome_code: str
    external_userid: str
    text: str = ""
    attachments: tuple[dict[str, Any], ...] = ()
    event_time: float = 0.0
    window_seconds: float = 20.0

    @property
    def idem_key(self) -> str:
        return f"welcome:{self.welcome_code}"

    def deadline(self, now: float) -> float | None:
        return (self.event_time or now) + self.window_seconds


@dataclass(frozen=True)
class SendKfText(WeComAction):
    """kf/send_msg of a text (within the session window: 48 h, 5 messages)."""

    kind: ClassVar[str] = "kf_send_text"
    open_kfid: str
    external_userid: str
    content: str
    reply_to: str

    @property
    def idem_key(self) -> str:
        return f"kf:reply:{self.open_kfid}:{self.reply_to}"


@dataclass(frozen=True)
class SendKfMenu(WeComAction):
    """kf/send_msg of a msgmenu: "您是想问：" with clickable questions (a click comes back with menu_id)."""

    kind: ClassVar[str] = "kf_send_menu"
    open_kfid: str
    external_userid: str
    head: str
    items: tuple[tuple[str, str], ...]
    tail: str
    reply_to: str

    @property
    def idem_key(self) -> str:
        return f"kf:menu:{self.open_kfid}:{self.reply_to}"


@dataclass(frozen=True)
class SendKfEventMessage(WeComAction):
    """kf/send_msg_on_event: the one message an event code allows (enter_session welcome: 20 s)."""

    kind: ClassVar[str] = "kf_send_on_event"
    code: str
    external_userid: str
    content: str
    event_time: float = 0.0
    window_seconds: float = 20.0

    @property
    def idem_key(self) -> str:
        return f"kf:event:{self.code}"

    def deadline(self, now: float) -> float | None:
        return (self.event_time or now) + self.window_seconds


@dataclass(frozen=True)
class KfHandOff(WeComAction):
    """Tell the customer a person is coming (kf/send_msg), then kf/service_state/trans to 2 or 3."""

    kind: ClassVar[str] = "kf_handoff"
    open_kfid: str
    external_userid: str
    message: str
    service_state: int
    reply_to: str
    servicer_userid: str = ""

    @property
    def idem_key(self) -> str:
        return f"kf:handoff:{self.open_kfid}:{self.reply_to}"


@dataclass(frozen=True)
class NotifyStaff(WeComAction):
    """message/send: an app message to guides."""

    kind: ClassVar[str] = "notify_staff"
    touser: tuple[str, ...]
    content: str
    key: str

    @property
    def idem_key(self) -> str:
        return f"notify:{self.key}"


@dataclass(frozen=True)
class RefreshCustomer(WeComAction):
    """externalcontact/get: fetch the customer's name, avatar and follow details into the profile."""

    kind: ClassVar[str] = "refresh_customer"
    external_userid: str
    reason_key: str

    @property
    def idem_key(self) -> str:
        return f"refresh:{self.external_userid}:{self.reason_key}"


@dataclass(frozen=True)
class SyncKf(WeComAction):
    """kf/sync_msg: pull what a kf_msg_or_event announced, into the inbox, from the stored cursor."""

    kind: ClassVar[str] = "kf_sync"
    open_kfid: str
    token: str

    @property
    def idem_key(self) -> str:
        return f"kfsync:{self.open_kfid}:{self.token}"

    @property
    def partition(self) -> str:
        return f"kf:{self.open_kfid}"

    def deadline(self, now: float) -> float | None:
        # The Token is valid 10 minutes; after that a pull without it is strictly rate-limited
        # but still possible, so the deadline is generous and the sync itself drops the token.
        return None


@dataclass(frozen=True)
class MarkTags(WeComAction):
    """externalcontact/mark_tag for one customer of one guide."""

    kind: ClassVar[str] = "mark_tags"
    userid: str
    external_userid: str
    add_tag: tuple[str, ...] = ()
    remove_tag: tuple[str, ...] = ()
    key: str = ""
    tag_names: tuple[tuple[str, str], ...] = ()
    """(group, tag) names the sender turns into ids from corp_tags at send time."""

    @property
    def idem_key(self) -> str:
        return f"tags:{self.external_userid}:{self.userid}:{self.key}"


@dataclass(frozen=True)
class SyncChannels(WeComAction):
    """Reconcile the channel live codes of `path` with WeCom for `day`, then schedule the next day."""

    kind: ClassVar[str] = "sync_channels"
    day: str
    path: str
    sync_at: str = "00:05"

    @property
    def idem_key(self) -> str:
        return f"channels:{self.day}"

    @property
    def partition(self) -> str:
        return "channels"


@dataclass(frozen=True)
class EnsureCorpTags(WeComAction):
    """get_corp_tag_list, then add_corp_tag for the (group, tag) names WeCom lacks; ids go to corp_tags."""

    kind: ClassVar[str] = "ensure_corp_tags"
    external_userid: str
    tags: tuple[tuple[str, str], ...]
    key: str

    @property
    def idem_key(self) -> str:
        return f"corptags:ensure:{self.key}"

    # In the customer's partition (the default): the MarkTags queued after it waits for the ids.


@dataclass(frozen=True)
class RefreshCorpTags(WeComAction):
    """get_corp_tag_list into corp_tags (after change_external_tag); tags no longer listed marked deleted."""

    kind: ClassVar[str] = "refresh_corp_tags"
    reason_key: str

    @property
    def idem_key(self) -> str:
        return f"corptags:refresh:{self.reason_key}"


@dataclass(frozen=True)
class SyncArchive(WeComAction):
    """Pull the chat archive (会话内容存档) from the stored seq into the inbox, after a msgaudit_notify."""

    kind: ClassVar[str] = "archive_sync"
    reason_key: str

    @property
    def idem_key(self) -> str:
        return f"archivesync:{self.reason_key}"

    @property
    def partition(self) -> str:
        return "archive"  # one pull at a time: each continues from the seq the last one stored


@dataclass(frozen=True)
class CreateMassTask(WeComAction):
    """externalcontact/add_msg_template for one customer, sent by her guide once the guide confirms."""

    kind: ClassVar[str] = "create_mass_task"
    key: str
    external_userid: str
    sender: str
    text: str
    attachments: tuple[dict[str, Any], ...] = ()
    enrollment_id: int = 0
    step_id: str = ""

    @property
    def idem_key(self) -> str:
        return f"mass:{self.key}"


@dataclass(frozen=True)
class CheckMassTask(WeComAction):
    """get_groupmsg_send_result for a task; reminds the guide (remind_groupmsg_send) while unsent."""

    kind: ClassVar[str] = "check_mass_task"
    task_key: str
    msgid: str
    external_userid: str
    sender: str
    check: int

    @property
    def idem_key(self) -> str:
        return f"masscheck:{self.task_key}:{self.check}"


@dataclass(frozen=True)
class RefreshGroup(WeComAction):
    """externalcontact/groupchat/get: who is in the group now (member callbacks carry no ids)."""

    kind: ClassVar[str] = "refresh_group"
    chat_id: str
    reason_key: str

    @property
    def idem_key(self) -> str:
        return f"group:{self.chat_id}:{self.reason_key}"

    @property
    def partition(self) -> str:
        return f"group:{self.chat_id}"


WECOM_ACTIONS: dict[str, type[WeComAction]] = {
    cls.kind: cls
    for cls in (
        SendWelcome,
        SendKfText,
        SendKfMenu,
        SendKfEventMessage,
        KfHandOff,
        NotifyStaff,
        CreateMassTask,
        CheckMassTask,
        RefreshGroup,
        RefreshCustomer,
        SyncKf,
        MarkTags,
        SyncChannels,
        EnsureCorpTags,
        RefreshCorpTags,
        SyncArchive,
    )
}


def rebuild(kind: str, payload: dict[str, Any]) -> WeComAction:
    """The WeCom action stored in an outbox row."""
    cls = WECOM_ACTIONS[kind]
    return cls(**{name: _tuples(value) for name, value in payload.items()})


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the frozen actions hold (nested, for menu items)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
