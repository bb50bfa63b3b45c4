"""The callback edge: verify, decrypt and parse WeCom callbacks into typed events.

Three endpoints share this code (https://developer.work.weixin.qq.com/document/path/90930):
the customer-contact app and the 微信客服 app post XML, the smart robot posts JSON. `parse`
turns a decrypted plaintext into an `Event`; the inbox stores the plaintext, so a row can be
parsed again by a newer version after a fix, and an unknown event is kept as it came. Siyu's own
edges store JSON the same way: the shop's order webhook body (`shop`) and link clicks (`link`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot import errors, events
from bot.clock import SHANGHAI
from bot.events import RouteKey, digest
from bot.wecom import xmlsafe
from bot.wecom.crypto import CallbackCrypto, parse_xml

# Sources of plaintext stored in the inbox: the three callback apps and kf/sync_msg items.
KF_ITEM = "kf_item"
# A decrypted chat-archive message (会话内容存档), pulled after msgaudit_notify.
ARCHIVE_ITEM = "archive_item"
# Siyu's own edges: the shop's order webhook body, and a click on a tracked link (JSON we wrote).
SHOP = "shop"
LINK = "link"
ORDER_ID_MAX = 64


@dataclass(frozen=True)
class Delivery:
    """One verified, decrypted callback: its plaintext and the event parsed from it."""

    app: str
    plaintext: str
    event: events.Event


def verify_url(crypto: CallbackCrypto, query: Mapping[str, str]) -> str:
    """Answer WeCom's URL verification: check the signature over echostr and decrypt it."""
    echostr = query.get("echostr", "")
    if not echostr:
        raise errors.MalformedCallback("echostr is missing")
    return crypto.decrypt(
        query.get("msg_signature", ""), query.get("timestamp", ""), query.get("nonce", ""), echostr
    )


def open_envelope(app: str, crypto: CallbackCrypto, query: Mapping[str, str], body: bytes) -> Delivery:
    """Verify and decrypt a POSTed callback body and parse it into an event."""
    encrypt = _robot_encrypt(body) if app == "robot" else parse_xml(body).get("Encrypt", "")
    if not encrypt:
        raise errors.MalformedCallback("Encrypt is missing")
    plaintext = crypto.decrypt(
        query.get("msg_signature", ""), query.get("timestamp", ""), query.get("nonce", ""), encrypt
    )
    return Delivery(app, plaintext, parse(app, plaintext))


def _robot_encrypt(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.MalformedCallback("robot callback body is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("encrypt"), str):
        raise errors.MalformedCallback("robot callback has no encrypt field")
    return data["encrypt"]


def parse(app: str, plaintext: str) -> events.Event:
    """Plaintext (XML, robot JSON or a kf/sync_msg item) -> typed event."""
    if app == "robot":
        return _parse_robot(_json_object(plaintext))
    if app == KF_ITEM:
        return parse_kf_item(_json_object(plaintext))
    if app == ARCHIVE_ITEM:
        return parse_archive_item(_json_object(plaintext))
    if app == SHOP:
        return parse_order(_json_object(plaintext))
    if app == LINK:
        return parse_click(_json_object(plaintext))
    return _parse_xml_event(app, plaintext)


def _json_object(plaintext: str) -> dict[str, Any]:
    try:
        data = json.loads(plaintext)
    except ValueError as exc:
        raise errors.MalformedCallback("payload is not JSON") from exc
    if not isinstance(data, dict):
        raise errors.MalformedCallback("payload is not a JSON object")
    return data


def _parse_xml_event(app: str, plaintext: str) -> events.Event:
    root = xmlsafe.parse(plaintext)
    fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    msg_type = fields.get("MsgType", "")
    if not msg_type:
        raise errors.MalformedCallback("MsgType is missing")
    create_time = _int(fields.get("CreateTime"))
    if msg_type != "event":
        return _staff_message(app, fields, create_time)
    event = fields.get("Event", "")
    change_type = fields.get("ChangeType", "")
    if event == "change_external_contact":
        return _contact_event(app, fields, create_time, change_type)
    if event == "change_external_chat":
        members = tuple((item.text or "").strip() for item in root.iterfind("MemChangeList/Item"))
        return _group_event(app, fields, create_time, change_type, members)
    if event == "change_external_tag":
        return events.CorpTagChanged(
            app=app,
            create_time=create_time,
            route_key=RouteKey("event", event, change_type),
            dedup_key=f"tag:{change_type}:{fields.get('Id', '')}:{create_time}:{_fields_digest(fields)}",
            change_type=change_type,
            tag_id=fields.get("Id", ""),
            tag_type=fields.get("TagType", ""),
            strategy_id=fields.get("StrategyId", ""),
        )
    if event == "kf_msg_or_event":
        open_kfid, token = fields.get("OpenKfId", ""), fields.get("Token", "")
        if not open_kfid:
            raise errors.MalformedCallback("OpenKfId is missing")
        return events.KfMessagesWaiting(
            app=app,
            create_time=create_time,
            route_key=RouteKey("event", event),
            # Each notification carries a fresh Token; a retry repeats it.
            dedup_key=f"kf:cb:{open_kfid}:{token or create_time}",
            partition=f"kf:{open_kfid}",
            open_kfid=open_kfid,
            token=token,
        )
    if event == "msgaudit_notify":
        return events.ArchiveMessagesWaiting(
            app=app,
            create_time=create_time,
            route_key=RouteKey("event", event),
            dedup_key=f"{app}:msgaudit:{create_time}:{_fields_digest(fields)}",
            partition="archive",
            agent_id=fields.get("AgentID", ""),
        )
    return _app_event(app, fields, create_time, event, root)


def _staff_message(app: str, fields: dict[str, str], create_time: int) -> events.Event:
    msg_type = fields["MsgType"]
    msg_id = fields.get("MsgId", "")
    sender = fields.get("FromUserName", "")
    known = {"text", "image", "voice", "video", "location", "link"}
    key = RouteKey("message", msg_type)
    dedup = f"{app}:msg:{msg_id}" if msg_id else f"{app}:msg:{sender}:{create_time}:{_fields_digest(fields)}"
    if msg_type not in known:
        return _unknown(app, fields, create_time, key, dedup)
    location = None
    if msg_type == "location":
        location = (_float(fields.get("Location_X")), _float(fields.get("Location_Y")))
    return events.StaffMessage(
        app=app,
        create_time=create_time,
        route_key=key,
        dedup_key=dedup,
        partition=f"staff:{sender}",
        msg_id=msg_id,
        from_userid=sender,
        agent_id=fields.get("AgentID", ""),
        msg_type=msg_type,
        content=fields.get("Content", ""),
        media_id=fields.get("MediaId", ""),
        pic_url=fields.get("PicUrl", ""),
        title=fields.get("Title", ""),
        description=fields.get("Description", ""),
        url=fields.get("Url", ""),
        location=location,
        label=fields.get("Label", ""),
    )


_CONTACT_CLASSES: dict[str, type[events.ContactEvent]] = {
    "add_external_contact": events.ContactAdded,
    "add_half_external_contact": events.ContactHalfAdded,
    "edit_external_contact": events.ContactEdited,
    "del_external_contact": events.ContactDeletedByGuide,
    "del_follow_user": events.ContactDeletedByCustomer,
    "transfer_fail": events.ContactTransferFailed,
    "msg_audit_approved": events.ArchiveConsent,
}


def _contact_event(app: str, fields: dict[str, str], create_time: int, change_type: str) -> events.Event:
    key = RouteKey("event", "change_external_contact", change_type)
    userid, external_userid = fields.get("UserID", ""), fields.get("ExternalUserID", "")
    # FromUserName is always "sys" and CreateTime has 1-s resolution, so the doc's
    # FromUserName+CreateTime key collides for two customers in one second (WxJava #1745).
    dedup = f"cec:{change_type}:{external_userid}:{userid}:{create_time}:{_fields_digest(fields)}"
    cls = _CONTACT_CLASSES.get(change_type)
    if cls is None or not external_userid:
        return _unknown(app, fields, create_time, key, dedup)
    extra: dict[str, Any] = {}
    if cls in (events.ContactAdded, events.ContactHalfAdded):
        extra = {"state": fields.get("State", ""), "welcome_code": fields.get("WelcomeCode", "")}
    elif cls is events.ArchiveConsent:
        extra = {"welcome_code": fields.get("WelcomeCode", "")}
    elif cls is events.ContactDeletedByGuide:
        extra = {"source": fields.get("Source", "")}
    elif cls is events.ContactTransferFailed:
        extra = {"fail_reason": fields.get("FailReason", "")}
    return cls(
        app=app,
        create_time=create_time,
        route_key=key,
        dedup_key=dedup,
        partition=f"cust:{external_userid}",
        userid=userid,
        external_userid=external_userid,
        **extra,
    )


def _group_event(
    app: str, fields: dict[str, str], create_time: int, change_type: str, members: tuple[str, ...]
) -> events.Event:
    key = RouteKey("event", "change_external_chat", change_type)
    chat_id = fields.get("ChatId", "")
    detail = fields.get("UpdateDetail", "")
    member_digest = digest(*members, fields.get("CurMemVer", ""))
    dedup = f"chat:{change_type}:{chat_id}:{detail}:{create_time}:{member_digest}:{_fields_digest(fields)}"
    common = {
        "app": app,
        "create_time": create_time,
        "route_key": key,
        "dedup_key": dedup,
        "partition": f"chat:{chat_id}",
        "chat_id": chat_id,
    }
    if not chat_id:
        return _unknown(app, fields, create_time, key, dedup)
    if change_type == "create":
        return events.GroupCreated(**common)
    if change_type == "dismiss":
        return events.GroupDismissed(**common)
    if change_type == "update":
        return events.GroupUpdated(
            **common,
            update_detail=detail,
            join_scene=_opt_int(fields.get("JoinScene")),
            quit_scene=_opt_int(fields.get("QuitScene")),
            mem_change_cnt=_int(fields.get("MemChangeCnt")),
            mem_change_list=members,
            last_mem_ver=fields.get("LastMemVer", ""),
            cur_mem_ver=fields.get("CurMemVer", ""),
        )
    return _unknown(app, fields, create_time, key, dedup)


_APP_EVENTS = {
    "subscribe",
    "unsubscribe",
    "enter_agent",
    "LOCATION",
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "template_card_event",
}


def _app_event(app: str, fields: dict[str, str], create_time: int, event: str, root: Any) -> events.Event:
    sender = fields.get("FromUserName", "")
    key = RouteKey("event", event)
    dedup = f"{app}:evt:{sender}:{create_time}:{event}:{_fields_digest(fields)}"
    if event not in _APP_EVENTS:
        return _unknown(app, fields, create_time, key, dedup)
    # Nested structures (ScanCodeInfo, SendPicsInfo, SendLocationInfo) flattened as Parent.Child.
    detail = {
        f"{parent.tag}.{child.tag}": (child.text or "").strip()
        for parent in root
        if len(parent)
        for child in parent
        if len(child) == 0
    }
    for name in ("Latitude", "Longitude", "Precision", "TaskId", "CardType", "ResponseCode"):
        if name in fields:
            detail[name] = fields[name]
    return events.AppEvent(
        app=app,
        create_time=create_time,
        route_key=key,
        dedup_key=dedup,
        partition=f"staff:{sender}",
        name=event,
        from_userid=sender,
        agent_id=fields.get("AgentID", ""),
        event_key=fields.get("EventKey", ""),
        detail=tuple(sorted(detail.items())),
    )


def _unknown(
    app: str, fields: Mapping[str, str], create_time: int, key: RouteKey, dedup: str
) -> events.UnknownEvent:
    return events.UnknownEvent(
        app=app,
        create_time=create_time,
        route_key=key,
        dedup_key=dedup,
        fields=tuple(sorted(fields.items())),
    )


def _parse_robot(data: dict[str, Any]) -> events.Event:
    msgid = str(data.get("msgid", ""))
    msg_type = str(data.get("msgtype", ""))
    if not msgid or not msg_type:
        raise errors.MalformedCallback("robot payload needs msgid and msgtype")
    sender = data.get("from") if isinstance(data.get("from"), dict) else {}
    chatid = str(data.get("chatid", ""))
    common: dict[str, Any] = {
        "app": "robot",
        "create_time": _int(data.get("create_time")),
        "dedup_key": f"robot:{msgid}",
        "partition": f"robot:{chatid or sender.get('userid', '')}",
        "msgid": msgid,
        "aibotid": str(data.get("aibotid", "")),
        "chatid": chatid,
        "chattype": str(data.get("chattype", "single")),
        "from_userid": str(sender.get("userid", "")),
        "response_url": str(data.get("response_url", "")),
    }
    if msg_type == "event":
        event = data.get("event") if isinstance(data.get("event"), dict) else {}
        event_type = str(event.get("eventtype", ""))
        return events.RobotEvent(
            route_key=RouteKey("robot", "event", event_type), event_type=event_type, **common
        )
    body = data.get(msg_type) if isinstance(data.get(msg_type), dict) else {}
    return events.RobotMessage(
        route_key=RouteKey("robot", msg_type),
        msg_type=msg_type,
        content=str(body.get("content", "")),
        **common,
    )


def parse_kf_item(item: Mapping[str, Any]) -> events.Event:
    """One `msg_list` item of kf/sync_msg -> typed kf event (https://developer.work.weixin.qq.com/document/path/94670)."""
    msgid = str(item.get("msgid", ""))
    open_kfid = str(item.get("open_kfid", ""))
    msg_type = str(item.get("msgtype", ""))
    if not msgid or not msg_type:
        raise errors.MalformedCallback("kf message needs msgid and msgtype")
    origin = _int(item.get("origin"))
    external_userid = str(item.get("external_userid", ""))
    body = item.get(msg_type) if isinstance(item.get(msg_type), dict) else {}
    if msg_type == "event":
        external_userid = external_userid or str(body.get("external_userid", ""))
        open_kfid = open_kfid or str(body.get("open_kfid", ""))
    common: dict[str, Any] = {
        "app": KF_ITEM,
        "create_time": _int(item.get("send_time")),
        "dedup_key": f"kf:msg:{open_kfid}:{msgid}",
        "partition": f"cust:{external_userid}" if external_userid else f"kf:{open_kfid}",
        "msgid": msgid,
        "open_kfid": open_kfid,
        "external_userid": external_userid,
        "send_time": _int(item.get("send_time")),
    }
    flat = tuple(sorted((str(k), _text(v)) for k, v in body.items()))
    if msg_type != "event":
        if origin == 5:
            return events.KfServicerMessage(
                route_key=RouteKey("kf", "servicer_message", msg_type),
                servicer_userid=str(item.get("servicer_userid", "")),
                msg_type=msg_type,
                content=str(body.get("content", "")),
                **common,
            )
        return events.KfCustomerMessage(
            route_key=RouteKey("kf", "message", msg_type),
            msg_type=msg_type,
            content=str(body.get("content", "")),
            menu_id=str(body.get("menu_id", "")),
            media_id=str(body.get("media_id", "")),
            payload=flat,
            **common,
        )
    event_type = str(body.get("event_type", ""))
    key = RouteKey("kf", "event", event_type)
    if event_type == "enter_session":
        return events.KfSessionEntered(
            route_key=key,
            scene=str(body.get("scene", "")),
            scene_param=str(body.get("scene_param", "")),
            welcome_code=str(body.get("welcome_code", "")),
            **common,
        )
    if event_type == "msg_send_fail":
        return events.KfSendFailed(
            route_key=key,
            fail_msgid=str(body.get("fail_msgid", "")),
            fail_type=_int(body.get("fail_type")),
            **common,
        )
    if event_type == "servicer_status_change":
        return events.KfServicerStatusChanged(
            route_key=key,
            servicer_userid=str(body.get("servicer_userid", "")),
            status=_int(body.get("status")),
            **common,
        )
    if event_type == "session_status_change":
        return events.KfSessionStatusChanged(
            route_key=key,
            change_type=_int(body.get("change_type")),
            old_servicer_userid=str(body.get("old_servicer_userid", "")),
            new_servicer_userid=str(body.get("new_servicer_userid", "")),
            msg_code=str(body.get("msg_code", "")),
            **common,
        )
    return events.KfOtherEvent(route_key=key, event_type=event_type, payload=flat, **common)


def parse_archive_item(item: Mapping[str, Any]) -> events.Event:
    """One decrypted chat-archive message -> ArchiveMessage (https://developer.work.weixin.qq.com/document/path/91774).

    The partition is the customer the message is about: the sender when a customer wrote it, the
    group for group chats, else the first customer it went to.
    """
    msgid = str(item.get("msgid", ""))
    if not msgid:
        raise errors.MalformedCallback("archive message needs msgid")
    action = str(item.get("action", "send"))
    msg_type = str(item.get("msgtype", ""))
    sender = str(item.get("from", ""))
    raw_to = item.get("tolist")
    tolist = tuple(str(t) for t in raw_to) if isinstance(raw_to, list) else ()
    roomid = str(item.get("roomid", ""))
    body = item.get(msg_type) if msg_type and isinstance(item.get(msg_type), dict) else {}
    if events.is_external_userid(sender):
        partition = f"cust:{sender}"
    elif roomid:
        partition = f"chat:{roomid}"
    else:
        customer = next((t for t in tolist if events.is_external_userid(t)), "")
        partition = f"cust:{customer}" if customer else "archive"
    msgtime = _int(item.get("msgtime"))
    return events.ArchiveMessage(
        app=ARCHIVE_ITEM,
        create_time=msgtime // 1000 if msgtime else _int(item.get("time")) // 1000,
        route_key=RouteKey("archive", action, msg_type),
        dedup_key=f"archive:msg:{msgid}",
        partition=partition,
        msgid=msgid,
        action=action,
        from_id=sender,
        tolist=tolist,
        roomid=roomid,
        msgtime=msgtime,
        msg_type=msg_type,
        content=str(body.get("content", "")) if msg_type == "text" else "",
    )


def parse_order(data: Mapping[str, Any]) -> events.OrderPaid:
    """The order webhook's JSON body -> OrderPaid; MalformedCallback names the first bad field."""
    order_id = data.get("order_id")
    if isinstance(order_id, int) and not isinstance(order_id, bool):
        order_id = str(order_id)
    if not isinstance(order_id, str) or not order_id.strip():
        raise errors.MalformedCallback("order_id: required, a non-empty string")
    if len(order_id) > ORDER_ID_MAX:
        raise errors.MalformedCallback(f"order_id: at most {ORDER_ID_MAX} characters")
    customer = data.get("external_userid")
    if not isinstance(customer, str) or not customer.strip() or len(customer) > 64:
        raise errors.MalformedCallback("external_userid: required, a string of 1-64 characters")
    amount = data.get("amount_cents", 0)
    if amount is None:
        amount = 0
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise errors.MalformedCallback("amount_cents: a non-negative integer (cents)")
    items = data.get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise errors.MalformedCallback("items: a list of objects")
    paid_at = _paid_at(data.get("paid_at"))
    return events.OrderPaid(
        app=SHOP,
        create_time=int(paid_at),
        route_key=RouteKey("shop", "order_paid"),
        # A resent order has the same id: stored and handled once.
        dedup_key=f"order:{order_id}",
        partition=f"cust:{customer}",
        order_id=order_id,
        external_userid=customer,
        amount_cents=amount,
        paid_at=paid_at,
        items=tuple(items),
    )


def _paid_at(value: Any) -> float:
    """Epoch seconds (number) or ISO 8601 (naive = Asia/Shanghai) -> epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            raise errors.MalformedCallback("paid_at: epoch seconds must be positive")
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise errors.MalformedCallback("paid_at: not an ISO 8601 date-time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=SHANGHAI)  # the brand's local time
        return when.timestamp()
    raise errors.MalformedCallback("paid_at: required, epoch seconds or an ISO 8601 date-time")


def click_plaintext(token: str, enrollment_id: int, external_userid: str, step_id: str, at: float) -> str:
    """What the inbox stores for a click on a tracked link (parsed back by `parse_click`)."""
    body = {
        "token": token,
        "enrollment_id": enrollment_id,
        "external_userid": external_userid,
        "step_id": step_id,
        "clicked_at": at,
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True)


def parse_click(data: Mapping[str, Any]) -> events.LinkClicked:
    """A stored click -> LinkClicked, de-duplicated per token and minute (reload storms count once)."""
    token = str(data.get("token", ""))
    customer = str(data.get("external_userid", ""))
    if not token or not customer:
        raise errors.MalformedCallback("click needs token and external_userid")
    clicked_at = _float(data.get("clicked_at"))
    return events.LinkClicked(
        app=LINK,
        create_time=int(clicked_at),
        route_key=RouteKey("link", "clicked"),
        dedup_key=f"click:{token}:{int(clicked_at // 60)}",
        partition=f"cust:{customer}",
        token=token,
        enrollment_id=_int(data.get("enrollment_id")),
        external_userid=customer,
        step_id=str(data.get("step_id", "")),
        clicked_at=clicked_at,
    )


def _fields_digest(fields: Mapping[str, str]) -> str:
    return digest(*(f"{k}={v}" for k, v in sorted(fields.items())))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "") else _int(value)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
