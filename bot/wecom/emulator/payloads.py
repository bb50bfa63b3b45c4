"""Plaintext callback bodies: WeCom's flat XML with CDATA (§3/§4/§8.1) and the robot's JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

Field = tuple[str, "str | int | list[str] | None"]


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside one CDATA section; split it across two.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml_doc(fields: Iterable[Field]) -> str:
    """`<xml>` with one child per field: ints bare, strings in CDATA, lists as <Item>s; None skipped."""
    parts = ["<xml>"]
    for name, value in fields:
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        elif isinstance(value, list):
            items = "".join(f"<Item>{_cdata(v)}</Item>" for v in value)
            parts.append(f"<{name}>{items}</{name}>")
        else:
            parts.append(f"<{name}>{_cdata(value)}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def contact_event(corp_id: str, create_time: int, change_type: str, **fields: Any) -> str:
    """`change_external_contact` event (p/92130): FromUserName is always `sys`."""
    head: list[Field] = [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", "change_external_contact"),
        ("ChangeType", change_type),
    ]
    return xml_doc(head + list(fields.items()))


def chat_event(corp_id: str, create_time: int, change_type: str, fields: list[Field]) -> str:
    """`change_external_chat` event (p/92130 §4.2)."""
    head: list[Field] = [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", "change_external_chat"),
    ]
    return xml_doc([*head, ("ChatId", fields[0][1]), ("ChangeType", change_type), *fields[1:]])


def tag_event(corp_id: str, create_time: int, change_type: str, fields: list[Field]) -> str:
    """`change_external_tag` event (p/92130 §4.3)."""
    head: list[Field] = [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", "change_external_tag"),
    ]
    return xml_doc([*head, *fields, ("ChangeType", change_type)])


def kf_event(corp_id: str, create_time: int, token: str, open_kfid: str) -> str:
    """`kf_msg_or_event` (p/94670): only a sync token and the account; content is pulled."""
    return xml_doc(
        [
            ("ToUserName", corp_id),
            ("CreateTime", create_time),
            ("MsgType", "event"),
            ("Event", "kf_msg_or_event"),
            ("Token", token),
            ("OpenKfId", open_kfid),
        ]
    )


def app_text(corp_id: str, userid: str, create_time: int, content: str, msgid: int, agent_id: int) -> str:
    """A member's text message to the app (§3)."""
    return xml_doc(
        [
            ("ToUserName", corp_id),
            ("FromUserName", userid),
            ("CreateTime", create_time),
            ("MsgType", "text"),
            ("Content", content),
            ("MsgId", str(msgid)),
            ("AgentID", agent_id),
        ]
    )


def robot_text(
    *, msgid: str, aibotid: str, chatid: str, chattype: str, userid: str, response_url: str, content: str
) -> str:
    """A smart-robot text callback (decrypted JSON)."""
    body: dict[str, Any] = {
        "msgid": msgid,
        "aibotid": aibotid,
        "chattype": chattype,
        "from": {"userid": userid},
        "response_url": response_url,
        "msgtype": "text",
        "text": {"content": content},
    }
    if chattype == "group":
        body["chatid"] = chatid
    return json.dumps(body, ensure_ascii=False)
