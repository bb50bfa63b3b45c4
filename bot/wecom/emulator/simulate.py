"""Client-side actions played by the emulator ("a customer adds 小林"), each ending in a real callback.

Only these hooks emit customer-contact callbacks; the emulator's own APIs never do (p/96361, §14.9).
Every method returns the ids it made plus the delivery record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator import groupmsg_model, kf_model, payloads
from bot.wecom.emulator.world import DEMO_OPEN_KFID, Customer, Follow, Tag, TagGroup, WelcomeCode

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.config import Settings
    from bot.wecom.emulator.state import EmulatorOptions
    from bot.wecom.emulator.world import IdFactory, World

# Action name (POST /emulator/simulate/<action>) -> EmulatorState method.
ACTIONS = (
    "add_contact",
    "add_contact_pair",
    "add_half_contact",
    "edit_contact",
    "customer_deletes_guide",
    "guide_deletes_customer",
    "transfer_fail",
    "kf_message",
    "kf_enter_session",
    "kf_servicer_message",
    "group_event",
    "group_join",
    "group_leave",
    "tag_event",
    "app_message",
    "robot_message",
    "archive_message",
    "groupmsg_confirm",
    "raw",
    "verify_url",
)


class SimulateMixin:
    """Customer and staff actions, mixed into EmulatorState."""

    settings: Settings
    clock: Clock
    ids: IdFactory
    options: EmulatorOptions
    world: World

    if TYPE_CHECKING:

        async def deliver(
            self, app: str, plaintext: str, *, event: str = "", kind: str | None = None
        ) -> dict[str, Any]: ...

        async def verify_url(self, app: str) -> dict[str, Any]: ...

    # -- helpers ---------------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock.timestamp())

    def _corp(self) -> str:
        return self.settings.wecom.corp_id

    def _staff(self, userid: str) -> None:
        if userid not in self.world.staff:
            raise ValueError(f"unknown member {userid!r}")

    def _new_customer(self, external_userid: str | None, name: str | None) -> Customer:
        external_userid = external_userid or self.ids.external_userid()
        customer = self.world.customers.get(external_userid)
        if customer is None:
            customer = Customer(external_userid=external_userid, name=name or "微信用户")
            self.world.customers[external_userid] = customer
        elif name:
            customer.name = name
        return customer

    def _follow(self, userid: str, external_userid: str) -> Follow:
        follow = self.world.follows.get((userid, external_userid))
        if follow is None:
            raise ValueError(f"{userid} does not follow {external_userid}")
        return follow

    def _welcome_code(self, userid: str, external_userid: str) -> str:
        code = self.ids.text(43)
        self.world.welcome_codes[code] = WelcomeCode(
            code=code, userid=userid, external_userid=external_userid, issued_at=self.clock.timestamp()
        )
        return code

    # -- customer contact (§4.1) -----------------------------------------------------------------

    async def _add(
        self,
        change_type: str,
        userid: str | None,
        state: str | None,
        external_userid: str | None,
        name: str | None,
        with_welcome_code: bool,
        add_way: int,
        config_id: str | None,
        create_time: int | None,
        half: bool,
    ) -> dict[str, Any]:
        if config_id is not None:
            way = self.world.contact_ways.get(config_id)
            if way is None:
                raise ValueError(f"unknown contact way {config_id!r}")
            userid = userid or (way.user[0] if way.user else None)
            state = way.state if state is None else state
        if not userid:
            raise ValueError("userid is required")
        self._staff(userid)
        customer = self._new_customer(external_userid, name)
        create_time = create_time or self._now()
        self.world.follows[(userid, customer.external_userid)] = Follow(
            userid=userid,
            external_userid=customer.external_userid,
            createtime=create_time,
            state=state or "",
            add_way=add_way,
            oper_userid=customer.external_userid,
            half=half,
        )
        # No WelcomeCode when the console already has a welcome message for the member (p/92130).
        code = None
        if with_welcome_code and userid not in self.options.console_welcome_for:
            code = self._welcome_code(userid, customer.external_userid)
        xml = payloads.contact_event(
            self._corp(),
            create_time,
            change_type,
            UserID=userid,
            ExternalUserID=customer.external_userid,
            State=state or "",
            WelcomeCode=code,
        )
        delivery = await self.deliver("contact", xml, event=f"change_external_contact/{change_type}")
        return {
            "userid": userid,
            "external_userid": customer.external_userid,
            "state": state or "",
            "welcome_code": code,
            "create_time": create_time,
            "delivery": delivery,
        }

    async def simulate_add_contact(
        self,
        userid: str | None = None,
        state: str | None = None,
        external_userid: str | None = None,
        name: str | None = None,
        with_welcome_code: bool = True,
        add_way: int = 1,
        config_id: str | None = None,
        create_time: int | None = None,
    ) -> dict[str, Any]:
        """A customer adds member `userid` (or scans contact way `config_id`): add_external_contact."""
        return await self._add(
            "add_external_contact",
            userid,
            state,
            external_userid,
            name,
            with_welcome_code,
            add_way,
            config_id,
            create_time,
            half=False,
        )

    async def simulate_add_contact_pair(self, userid: str, state: str | None = None) -> dict[str, Any]:
        """Two adds in the same second differing only in ExternalUserID (§14.8: dedup must not collide)."""
        create_time = self._now()
        first = await self.simulate_add_contact(userid=userid, state=state, create_time=create_time)
        second = await self.simulate_add_contact(userid=userid, state=state, create_time=create_time)
        return {"events": [first, second]}

    async def simulate_add_half_contact(
        self,
        userid: str,
        state: str | None = None,
        external_userid: str | None = None,
        name: str | None = None,
        with_welcome_code: bool = True,
    ) -> dict[str, Any]:
        """A customer adds the member without verification: add_half_external_contact."""
        return await self._add(
            "add_half_external_contact",
            userid,
            state,
            external_userid,
            name,
            with_welcome_code,
            1,
            None,
            None,
            half=True,
        )

    async def simulate_edit_contact(
        self, userid: str, external_userid: str, remark: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """The member edits the customer in the client: edit_external_contact."""
        follow = self._follow(userid, external_userid)
        if remark is not None:
            follow.remark = remark
        if description is not None:
            follow.description = description
        xml = payloads.contact_event(
            self._corp(), self._now(), "edit_external_contact", UserID=userid, ExternalUserID=external_userid
        )
        delivery = await self.deliver("contact", xml, event="change_external_contact/edit_external_contact")
        return {"userid": userid, "external_userid": external_userid, "delivery": delivery}

    async def simulate_customer_deletes_guide(self, userid: str, external_userid: str) -> dict[str, Any]:
        """The customer deletes/blocks the member: del_follow_user."""
        self._follow(userid, external_userid)
        del self.world.follows[(userid, external_userid)]
        xml = payloads.contact_event(
            self._corp(), self._now(), "del_follow_user", UserID=userid, ExternalUserID=external_userid
        )
        delivery = await self.deliver("contact", xml, event="change_external_contact/del_follow_user")
        return {"userid": userid, "external_userid": external_userid, "delivery": delivery}

    async def simulate_guide_deletes_customer(
        self, userid: str, external_userid: str, source: str | None = None
    ) -> dict[str, Any]:
        """The member deletes the customer: del_external_contact (Source=DELETE_BY_TRANSFER optional)."""
        self._follow(userid, external_userid)
        del self.world.follows[(userid, external_userid)]
        xml = payloads.contact_event(
            self._corp(),
            self._now(),
            "del_external_contact",
            UserID=userid,
            ExternalUserID=external_userid,
            Source=source,
        )
        delivery = await self.deliver("contact", xml, event="change_external_contact/del_external_contact")
        return {"userid": userid, "external_userid": external_userid, "delivery": delivery}

    async def simulate_transfer_fail(
        self, userid: str, external_userid: str, fail_reason: str = "customer_refused"
    ) -> dict[str, Any]:
        """A transfer to takeover member `userid` failed: transfer_fail."""
        if fail_reason not in ("customer_refused", "customer_limit_exceed"):
            raise ValueError("fail_reason must be customer_refused or customer_limit_exceed")
        xml = payloads.contact_event(
            self._corp(),
            self._now(),
            "transfer_fail",
            UserID=userid,
            ExternalUserID=external_userid,
            FailReason=fail_reason,
        )
        delivery = await self.deliver("contact", xml, event="change_external_contact/transfer_fail")
        return {"userid": userid, "external_userid": external_userid, "delivery": delivery}

    # -- groups and tags (§4.2, §4.3) ------------------------------------------------------------

    async def simulate_group_event(
        self,
        change_type: str,
        chat_id: str | None = None,
        owner: str = "xiaolin",
        update_detail: str | None = None,
        members: list[str] | None = None,
        join_scene: int = 0,
        quit_scene: int = 0,
        name: str = "",
    ) -> dict[str, Any]:
        """change_external_chat: create, update (add_member/del_member/…), dismiss; groupchat/get shows it."""
        groups = self.world.groups
        if change_type == "create":
            chat_id = chat_id or self.ids.chat_id()
            now = self._now()
            groups[chat_id] = {
                "owner": owner,
                "name": name,
                "create_time": now,
                "members": [owner],
                "joined": {owner: {"join_time": now, "join_scene": 0}},
                "member_version": self.ids.hex(32),
            }
            fields: list[payloads.Field] = [("ChatId", chat_id)]
        elif change_type in ("update", "dismiss"):
            if not chat_id or chat_id not in groups:
                raise ValueError(f"unknown chat {chat_id!r}")
            fields = [("ChatId", chat_id)]
            if change_type == "dismiss":
                del groups[chat_id]
            else:
                fields += self._group_update(
                    groups[chat_id], update_detail, members or [], join_scene, quit_scene
                )
        else:
            raise ValueError("change_type must be create, update or dismiss")
        xml = payloads.chat_event(self._corp(), self._now(), change_type, fields)
        delivery = await self.deliver("contact", xml, event=f"change_external_chat/{change_type}")
        return {"chat_id": chat_id, "delivery": delivery}

    async def simulate_group_join(
        self, chat_id: str, external_userid: str, join_scene: int = 3, name: str | None = None
    ) -> dict[str, Any]:
        """A customer joins a group (3 scans its QR code, 0 is invited): update/add_member."""
        if join_scene not in (0, 3):
            raise ValueError("join_scene must be 0 (invited) or 3 (scanned the group QR code)")
        self._new_customer(external_userid, name)
        return await self.simulate_group_event(
            "update",
            chat_id=chat_id,
            update_detail="add_member",
            members=[external_userid],
            join_scene=join_scene,
        )

    async def simulate_group_leave(
        self, chat_id: str, external_userid: str, quit_scene: int = 0
    ) -> dict[str, Any]:
        """A customer leaves a group (0 by herself, 1 removed by the owner): update/del_member."""
        if quit_scene not in (0, 1):
            raise ValueError("quit_scene must be 0 (left) or 1 (removed)")
        group = self.world.groups.get(chat_id)
        if group is None or external_userid not in group["members"]:
            raise ValueError(f"{external_userid!r} is not in chat {chat_id!r}")
        return await self.simulate_group_event(
            "update",
            chat_id=chat_id,
            update_detail="del_member",
            members=[external_userid],
            quit_scene=quit_scene,
        )

    def _group_update(
        self, group: dict[str, Any], detail: str | None, members: list[str], join_scene: int, quit_scene: int
    ) -> list[payloads.Field]:
        if detail not in ("add_member", "del_member", "change_owner", "change_name", "change_notice"):
            raise ValueError(
                "update_detail must be add_member, del_member, change_owner, change_name, change_notice"
            )
        fields: list[payloads.Field] = [("UpdateDetail", detail)]
        if detail not in ("add_member", "del_member"):
            return fields
        last = group["member_version"]
        joined = group.setdefault("joined", {})
        if detail == "add_member":
            for member in members:
                if member not in group["members"]:
                    group["members"].append(member)
                    joined[member] = {"join_time": self._now(), "join_scene": join_scene}
            fields.append(("JoinScene", join_scene))
        else:
            group["members"] = [m for m in group["members"] if m not in members]
            for member in members:
                joined.pop(member, None)
            fields.append(("QuitScene", quit_scene))
        group["member_version"] = self.ids.hex(32)
        return [
            *fields,
            ("MemChangeCnt", len(members)),
            ("MemChangeList", list(members)),
            ("LastMemVer", last),
            ("CurMemVer", group["member_version"]),
        ]

    async def simulate_tag_event(
        self,
        change_type: str,
        tag_type: str = "tag",
        id: str | None = None,
        name: str | None = None,
        group_id: str | None = None,
        strategy_id: str | None = None,
    ) -> dict[str, Any]:
        """An admin edits corp tags in the console: change_external_tag (create/update/delete/shuffle)."""
        if tag_type not in ("tag", "tag_group"):
            raise ValueError("tag_type must be tag or tag_group")
        id = self._console_tag_change(change_type, tag_type, id, name, group_id)
        fields: list[payloads.Field] = [
            ("Id", id or ""),
            ("TagType", tag_type if change_type != "shuffle" else None),
            ("StrategyId", strategy_id),
        ]
        xml = payloads.tag_event(self._corp(), self._now(), change_type, fields)
        delivery = await self.deliver("contact", xml, event=f"change_external_tag/{change_type}")
        return {"id": id, "delivery": delivery}

    def _console_tag_change(
        self, change_type: str, tag_type: str, id: str | None, name: str | None, group_id: str | None
    ) -> str | None:
        groups, now = self.world.tag_groups, self._now()
        if change_type == "create":
            if tag_type == "tag_group":
                group = TagGroup(group_id=self.ids.tag_id(), group_name=name or "新标签组", create_time=now)
                groups[group.group_id] = group
                return group.group_id
            if not group_id or group_id not in groups:
                raise ValueError("create tag needs an existing group_id")
            tag = Tag(id=self.ids.tag_id(), name=name or "新标签", group_id=group_id, create_time=now)
            groups[group_id].tags.append(tag)
            return tag.id
        if change_type in ("update", "delete"):
            target = groups.get(id or "") if tag_type == "tag_group" else self.world.tag(id or "")
            if target is None:
                raise ValueError(f"unknown {tag_type} {id!r}")
            if change_type == "delete":
                target.deleted = True
            elif name is not None:
                if isinstance(target, TagGroup):
                    target.group_name = name
                else:
                    target.name = name
            return id
        if change_type == "shuffle":
            return id
        raise ValueError("change_type must be create, update, delete or shuffle")

    # -- 微信客服 (§8) -----------------------------------------------------------------------------

    async def _kf_notify(self, open_kfid: str) -> dict[str, Any]:
        token = kf_model.issue_sync_token(self)
        xml = payloads.kf_event(self._corp(), self._now(), token, open_kfid)
        delivery = await self.deliver("kf", xml, event="kf_msg_or_event")
        return {"token": token, "delivery": delivery}

    def _kf_account(self, open_kfid: str) -> str:
        if open_kfid not in self.world.kf_accounts:
            raise ValueError(f"unknown kf account {open_kfid!r}")
        return open_kfid

    async def simulate_kf_message(
        self,
        text: str,
        open_kfid: str = DEMO_OPEN_KFID,
        external_userid: str | None = None,
        name: str | None = None,
        menu_id: str = "",
    ) -> dict[str, Any]:
        """A customer writes to the kf account (or clicks a menu item: menu_id), then kf_msg_or_event."""
        self._kf_account(open_kfid)
        customer = self._new_customer(external_userid, name)
        sess = kf_model.session(self, open_kfid, customer.external_userid)
        kf_model.customer_message(self, sess)
        item = kf_model.append_log(
            self,
            open_kfid,
            {
                "external_userid": customer.external_userid,
                "origin": 3,
                "msgtype": "text",
                # A click on a msgmenu "click" item arrives as text carrying the item's id (p/94670).
                "text": {"content": text, "menu_id": menu_id} if menu_id else {"content": text},
            },
        )
        notify = await self._kf_notify(open_kfid)
        return {
            "open_kfid": open_kfid,
            "external_userid": customer.external_userid,
            "msgid": item["msgid"],
            "service_state": sess.state,
            **notify,
        }

    async def simulate_kf_enter_session(
        self,
        open_kfid: str = DEMO_OPEN_KFID,
        external_userid: str | None = None,
        scene: str = "",
        scene_param: str = "",
        with_welcome_code: bool = True,
    ) -> dict[str, Any]:
        """A customer opens the kf chat: enter_session event (origin 4) with a 20 s welcome_code."""
        self._kf_account(open_kfid)
        customer = self._new_customer(external_userid, None)
        sess = kf_model.session(self, open_kfid, customer.external_userid)
        recent = sess.last_customer_msg_at is not None and (
            self.clock.timestamp() - sess.last_customer_msg_at < kf_model.WINDOW_SECONDS
        )
        # welcome_code only when the customer sent nothing in the last 48 h (p/94670).
        code = None
        if with_welcome_code and not recent:
            code = kf_model.issue_event_code(
                self, sess, ttl=kf_model.ENTER_SESSION_CODE_TTL, required_state=None
            )
        event: dict[str, Any] = {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": customer.external_userid,
            "scene": scene,
            "scene_param": scene_param,
        }
        if code:
            event["welcome_code"] = code
        item = kf_model.append_log(self, open_kfid, {"origin": 4, "msgtype": "event", "event": event})
        notify = await self._kf_notify(open_kfid)
        return {
            "open_kfid": open_kfid,
            "external_userid": customer.external_userid,
            "msgid": item["msgid"],
            "welcome_code": code,
            **notify,
        }

    async def simulate_kf_servicer_message(
        self,
        external_userid: str,
        text: str,
        servicer_userid: str = "xiaolin",
        open_kfid: str = DEMO_OPEN_KFID,
    ) -> dict[str, Any]:
        """A servicer replies from the WeCom client: origin 5 in the log, session -> 3."""
        self._kf_account(open_kfid)
        sess = kf_model.session(self, open_kfid, external_userid)
        sess.state, sess.servicer_userid = 3, servicer_userid
        item = kf_model.append_log(
            self,
            open_kfid,
            {
                "external_userid": external_userid,
                "origin": 5,
                "servicer_userid": servicer_userid,
                "msgtype": "text",
                "text": {"content": text},
            },
        )
        notify = await self._kf_notify(open_kfid)
        return {"open_kfid": open_kfid, "external_userid": external_userid, "msgid": item["msgid"], **notify}

    # -- 会话内容存档 (chat archive) ----------------------------------------------------------------

    async def simulate_archive_message(
        self,
        sender: str,
        text: str,
        tolist: list[str] | None = None,
        roomid: str = "",
        msgtype: str = "text",
        notify: bool = True,
    ) -> dict[str, Any]:
        """Someone writes in a 1:1 chat or a customer group: archived, then msgaudit_notify (contact app).

        `sender` is a member's userid or a customer's external_userid. A customer's 1:1 message
        without `tolist` goes to the guides the customer follows; a guide's 1:1 message needs `tolist`.
        """
        from bot.wecom.emulator.archive import feed_of, msgaudit_notify

        customer_sent = sender.startswith(("wm", "wo"))
        if not customer_sent:
            self._staff(sender)
        if tolist is None:
            if customer_sent and not roomid:
                tolist = [userid for (userid, ext) in self.world.follows if ext == sender]
            else:
                tolist = []
        if not roomid and not tolist:
            raise ValueError("a 1:1 message needs tolist (or a customer who follows a guide)")
        msgid = f"{self.ids.digits(19)}_{self._now()}_external"
        message: dict[str, Any] = {
            "msgid": msgid,
            "action": "send",
            "from": sender,
            "tolist": list(tolist),
            "roomid": roomid,
            "msgtime": int(self.clock.timestamp() * 1000),
            "msgtype": msgtype,
        }
        if msgtype == "text":
            message["text"] = {"content": text}
        seq = feed_of(self).append(message)
        result: dict[str, Any] = {"msgid": msgid, "seq": seq}
        if notify:
            agent_id = self.settings.app("contact").agent_id or 0
            xml = msgaudit_notify(self._corp(), self._now(), agent_id)
            result["delivery"] = await self.deliver("contact", xml, event="msgaudit_notify")
        return result

    # -- 企业群发 (§7) ----------------------------------------------------------------------------

    async def simulate_groupmsg_confirm(
        self, msgid: str, userid: str, recipients: list[str] | None = None
    ) -> dict[str, Any]:
        """Member `userid` confirms their part of mass-send task `msgid` in the client: delivery.

        No callback follows (WeCom sends none); the result is the member's send_list.
        """
        return groupmsg_model.confirm(self, msgid, userid, recipients)  # type: ignore[arg-type]

    # -- app, robot, raw -------------------------------------------------------------------------

    async def simulate_app_message(self, userid: str, text: str) -> dict[str, Any]:
        """A member sends text to the contact app (MsgType text with MsgId)."""
        self._staff(userid)
        msgid = int(self.ids.digits(19))
        agent_id = self.settings.app("contact").agent_id or 0
        xml = payloads.app_text(self._corp(), userid, self._now(), text, msgid, agent_id)
        delivery = await self.deliver("contact", xml, event="text", kind="message")
        return {"msgid": str(msgid), "delivery": delivery}

    async def simulate_robot_message(
        self, userid: str, text: str, chattype: str = "single", chatid: str | None = None
    ) -> dict[str, Any]:
        """Someone @-mentions or DMs the smart robot (JSON callback, receive id "")."""
        if chattype not in ("single", "group"):
            raise ValueError("chattype must be single or group")
        msgid = self.ids.hex(32)
        chatid = chatid or (self.ids.chat_id() if chattype == "group" else "")
        body = payloads.robot_text(
            msgid=msgid,
            aibotid="aibDEMOxiaohe",
            chatid=chatid,
            chattype=chattype,
            userid=userid,
            response_url=f"https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code={self.ids.text(24)}",
            content=text,
        )
        delivery = await self.deliver("robot", body, event="robot/text")
        return {"msgid": msgid, "chatid": chatid, "delivery": delivery}

    async def simulate_raw(self, app: str, plaintext: str) -> dict[str, Any]:
        """Encrypt and deliver any plaintext (unknown events, hand-written fixtures)."""
        if app not in ("contact", "kf", "robot"):
            raise ValueError("app must be contact, kf or robot")
        return {"delivery": await self.deliver(app, plaintext, event="raw")}

    async def simulate_verify_url(self, app: str = "contact") -> dict[str, Any]:
        """The echostr URL-verification handshake against the service."""
        return await self.verify_url(app)
