"""The emulated corp's data: staff, customers, follow relations, tags, contact ways, kf, media.

Plain dataclasses; the API modules validate and mutate them, `simulate` plays the customers.
`demo_world` seeds the fictional maternal & baby brand 小禾母婴 used by `siyu demo` and the tests.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

DEMO_OPEN_KFID = "wkDEMOxiaohe0000000000000000001"
DEMO_KF_NAME = "小禾母婴客服"


class IdFactory:
    """Id shapes seen in the official examples (wecom-api.md §0), from a seeded generator."""

    _ALNUM = string.ascii_letters + string.digits

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def text(self, n: int, alphabet: str = _ALNUM) -> str:
        """`n` random characters."""
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    def hex(self, n: int) -> str:
        """`n` random lowercase hex characters."""
        return self.text(n, "0123456789abcdef")

    def digits(self, n: int) -> str:
        """`n` random digits (first not zero)."""
        return self._rng.choice("123456789") + self.text(n - 1, string.digits)

    def external_userid(self) -> str:
        """`wm` + 30 characters, 32 in all."""
        return "wm" + self.text(30)

    def chat_id(self) -> str:
        """A customer-group chat id (`wr…`)."""
        return "wr" + self.text(30)

    def tag_id(self) -> str:
        """A corp tag or tag-group id (`et…`)."""
        return "et" + self.text(30)

    def group_msgid(self) -> str:
        """A mass-send task id (`msg…`)."""
        return "msg" + self.text(27)

    def token(self) -> str:
        """An access_token (real ones are opaque, up to 512 bytes)."""
        return self.text(96, self._ALNUM + "-_")


@dataclass
class Staff:
    """A member (员工); `contact_enabled` = has 客户联系 permission."""

    userid: str
    name: str
    contact_enabled: bool = True


@dataclass
class Customer:
    """An external contact (WeChat user)."""

    external_userid: str
    name: str
    type: int = 1
    gender: int = 0
    avatar: str = ""
    unionid: str = ""
    corp_name: str = ""


@dataclass
class Follow:
    """The member ↔ customer relation (`follow_user` item of externalcontact/get, p/92114)."""

    userid: str
    external_userid: str
    createtime: int
    state: str = ""
    add_way: int = 1
    oper_userid: str = ""
    remark: str = ""
    description: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)
    half: bool = False  # add_half_external_contact: the member has not added back yet


@dataclass
class Tag:
    """A corp tag."""

    id: str
    name: str
    group_id: str
    create_time: int
    order: int = 0
    deleted: bool = False


@dataclass
class TagGroup:
    """A corp tag group."""

    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    deleted: bool = False
    tags: list[Tag] = field(default_factory=list)


@dataclass
class ContactWay:
    """A 「联系我」 config (p/92572)."""

    config_id: str
    type: int
    scene: int
    created_at: int
    style: int | None = None
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    user: list[str] = field(default_factory=list)
    party: list[int] = field(default_factory=list)
    is_temp: bool = False
    expires_in: int | None = None
    chat_expires_in: int | None = None
    unionid: str = ""
    conclusions: dict[str, Any] | None = None
    qr_code: str = ""


@dataclass
class WelcomeCode:
    """A WelcomeCode from add_external_contact: 20 s, one use (p/92599)."""

    code: str
    userid: str
    external_userid: str
    issued_at: float
    status: str = "fresh"  # fresh | in_flight | used


@dataclass
class Media:
    """A temporary media item (valid 3 days, p/90253)."""

    media_id: str
    type: str
    created_at: int
    size: int
    filename: str = ""


@dataclass
class KfAccount:
    """A 微信客服 account and its servicers (userid → status: 1 receiving, 2 stopped)."""

    open_kfid: str
    name: str
    servicers: dict[str, int] = field(default_factory=dict)
    avatar: str = ""
    manage_privilege: bool = True


@dataclass
class KfSession:
    """One customer × one kf account (p/94669); states 0–4."""

    open_kfid: str
    external_userid: str
    state: int = 4
    servicer_userid: str = ""
    last_customer_msg_at: float | None = None
    sent_since_customer_msg: int = 0
    greeted: bool = False  # a msg_code has been issued for the first move to 2/3


@dataclass
class KfLogItem:
    """A sync_msg item kept in an account's log (customer messages, events, servicer messages)."""

    seq: int
    send_time: int
    item: dict[str, Any]


@dataclass
class KfEventCode:
    """A code usable with kf/send_msg_on_event (welcome_code or a trans msg_code)."""

    code: str
    open_kfid: str
    external_userid: str
    issued_at: float
    ttl_seconds: float
    required_state: int | None  # None: enter_session codes need no particular state
    used: bool = False


@dataclass
class GroupMsgSend:
    """One recipient of a mass-send: status 0 not sent, 1 sent, 2 not a friend, 3 over the cap (p/93338)."""

    userid: str
    target: str  # external_userid (chat_type single) or chat_id (group)
    status: int = 0
    send_time: int | None = None


@dataclass
class GroupMsg:
    """A mass-send task from add_msg_template (p/92135); each member confirms their part in the client."""

    msgid: str
    chat_type: str
    create_time: int
    text: dict[str, Any] | None
    attachments: list[dict[str, Any]]
    allow_select: bool = False
    sender: str = ""
    sends: list[GroupMsgSend] = field(default_factory=list)
    sent_by: dict[str, int] = field(default_factory=dict)  # userid -> send_time once confirmed
    cancelled: bool = False
    reminders: list[float] = field(default_factory=list)  # remind_groupmsg_send times

    def members(self) -> list[str]:
        """Members with a part in the task, in first-recipient order."""
        return list(dict.fromkeys(s.userid for s in self.sends))


@dataclass
class World:
    """Everything the emulated corp knows."""

    staff: dict[str, Staff] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    follows: dict[tuple[str, str], Follow] = field(default_factory=dict)
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    kf_accounts: dict[str, KfAccount] = field(default_factory=dict)
    kf_sessions: dict[tuple[str, str], KfSession] = field(default_factory=dict)
    kf_log: dict[str, list[KfLogItem]] = field(default_factory=dict)
    kf_tokens: dict[str, float] = field(default_factory=dict)  # sync_msg token -> issued_at
    kf_event_codes: dict[str, KfEventCode] = field(default_factory=dict)
    kf_sent: list[dict[str, Any]] = field(default_factory=list)  # kf/send_msg + send_msg_on_event
    kf_msgids: dict[tuple[str, str], str] = field(default_factory=dict)  # (open_kfid, msgid) -> msgid
    app_messages: list[dict[str, Any]] = field(default_factory=list)  # message/send
    welcome_messages: list[dict[str, Any]] = field(default_factory=list)  # send_welcome_msg
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # chat_id -> {owner, members, ver}
    group_msgs: dict[str, GroupMsg] = field(default_factory=dict)  # add_msg_template tasks
    group_messages: list[dict[str, Any]] = field(default_factory=list)  # mass-send deliveries
    kf_seq: int = 0

    def tag(self, tag_id: str) -> Tag | None:
        """A live or deleted tag by id."""
        for group in self.tag_groups.values():
            for tag in group.tags:
                if tag.id == tag_id:
                    return tag
        return None

    def live_tag_count(self) -> int:
        """Corp tags counted against the 3,000 cap (p/92117)."""
        return sum(1 for g in self.tag_groups.values() for t in g.tags if not t.deleted and not g.deleted)

    def follows_of_customer(self, external_userid: str) -> list[Follow]:
        """Follow relations of one customer, oldest first."""
        found = [f for f in self.follows.values() if f.external_userid == external_userid]
        return sorted(found, key=lambda f: f.createtime)

    def follows_of_staff(self, userid: str) -> list[Follow]:
        """Follow relations of one member, oldest first."""
        found = [f for f in self.follows.values() if f.userid == userid]
        return sorted(found, key=lambda f: f.createtime)


def demo_world(now: int) -> World:
    """The demo corp: three guides, a tag catalogue, one kf account (小禾母婴)."""
    world = World()
    for userid, name in (("xiaolin", "小林"), ("zhangmei", "张美"), ("wangqiang", "王强")):
        world.staff[userid] = Staff(userid=userid, name=name)
    catalogue = {
        "宝宝月龄": ["孕期", "0-6月", "6-12月", "1-3岁"],
        "客户来源": ["门店", "直播", "朋友推荐"],
        "兴趣": ["奶粉", "纸尿裤", "辅食"],
    }
    for g_index, (group_name, names) in enumerate(catalogue.items(), start=1):
        group_id = f"etDEMOgroup{g_index:021d}"
        group = TagGroup(group_id=group_id, group_name=group_name, create_time=now, order=g_index)
        for t_index, name in enumerate(names, start=1):
            tag_id = f"etDEMOtag{g_index:02d}{t_index:021d}"
            group.tags.append(Tag(id=tag_id, name=name, group_id=group_id, create_time=now, order=t_index))
        world.tag_groups[group_id] = group
    world.kf_accounts[DEMO_OPEN_KFID] = KfAccount(
        open_kfid=DEMO_OPEN_KFID, name=DEMO_KF_NAME, servicers={"xiaolin": 1, "zhangmei": 1}
    )
    world.kf_log[DEMO_OPEN_KFID] = []
    return world
