"""微信客服 APIs: account/list, sync_msg, send_msg, send_msg_on_event, service_state/get|trans (§8).

Docs: p/94670 (sync_msg), p/94677 (send_msg), p/95122 (send_msg_on_event), p/94669 (service state).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.wecom.emulator import kf_model
from bot.wecom.emulator.common import (
    INVALID_PARAM,
    PARAM_EMPTY,
    ApiCall,
    ApiError,
    ApiSpec,
    int_field,
    ok,
    utf8_len,
)
from bot.wecom.emulator.world import KfSession

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

KF_APPS = frozenset({"kf"})
SYNC_LIMIT_MAX = 1000
TEXT_MAX_BYTES = 2048
MSGID_RE = re.compile(r"^[0-9a-zA-Z_-]{1,32}$")
SEND_MSGTYPES = frozenset(
    {"text", "image", "voice", "video", "file", "link", "miniprogram", "msgmenu", "location", "ca_link"}
)
MEDIA_MSGTYPES = frozenset({"image", "voice", "video", "file"})
# §8.5 transition table; 4 ("ended") has no API exit: a customer message moves it to 0.
TRANSITIONS: dict[int, frozenset[int]] = {
    0: frozenset({1, 2, 3}),
    1: frozenset({2, 3}),
    2: frozenset({3}),
    3: frozenset({3, 4}),
    4: frozenset(),
}


def account_list(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """POST kf/account/list {offset, limit 1..100 (100)}; older docs used GET without a body."""
    offset = int_field(call.body, "offset", 0)
    limit = int_field(call.body, "limit", 100)
    if offset < 0 or not 1 <= limit <= 100:
        raise ApiError(INVALID_PARAM, "offset >= 0 and limit 1..100")
    accounts = list(state.world.kf_accounts.values())[offset : offset + limit]
    return ok(
        account_list=[
            {
                "open_kfid": a.open_kfid,
                "name": a.name,
                "avatar": a.avatar,
                "manage_privilege": a.manage_privilege,
            }
            for a in accounts
        ]
    )


def _encode_cursor(seq: int) -> str:
    return f"C{seq:08x}"


def _decode_cursor(cursor: Any) -> int:
    if not isinstance(cursor, str) or len(cursor) > 64 or not re.fullmatch(r"C[0-9a-f]+", cursor):
        raise ApiError(INVALID_PARAM, "invalid cursor")
    return int(cursor[1:], 16)


def sync_msg(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Pull customer messages (3), events (4) and client-sent servicer messages (5); never send_msg's."""
    body, now = call.body, state.clock.timestamp()
    acct = kf_model.account(state, body.get("open_kfid"))
    token = body.get("token")
    if token:
        issued = state.world.kf_tokens.get(token) if isinstance(token, str) and len(token) <= 128 else None
        if issued is None or now - issued > kf_model.SYNC_TOKEN_TTL:
            raise ApiError(95007)
    limit = int_field(body, "limit", SYNC_LIMIT_MAX)
    if not 1 <= limit <= SYNC_LIMIT_MAX:
        raise ApiError(INVALID_PARAM, "limit must be 1..1000")
    after = _decode_cursor(body["cursor"]) if body.get("cursor") else 0
    log = [
        i
        for i in state.world.kf_log.get(acct.open_kfid, [])
        if i.seq > after and now - i.send_time <= kf_model.RETENTION_SECONDS
    ]
    page = log[:limit]
    last = page[-1].seq if page else after
    return ok(
        next_cursor=_encode_cursor(last),
        has_more=int(len(log) > limit),
        msg_list=[dict(i.item) for i in page],
    )


def _check_msgid(body: dict[str, Any]) -> str | None:
    msgid = body.get("msgid")
    if msgid in (None, ""):
        return None
    if not isinstance(msgid, str) or not MSGID_RE.match(msgid):
        raise ApiError(INVALID_PARAM, "msgid must be ≤32 bytes of [0-9a-zA-Z_-]")
    return msgid


def _check_content(state: EmulatorState, body: dict[str, Any], allowed: frozenset[str]) -> str:
    msgtype = body.get("msgtype")
    if not msgtype:
        raise ApiError(PARAM_EMPTY, "msgtype is required")
    if msgtype not in allowed:
        raise ApiError(40008, str(msgtype))
    obj = body.get(msgtype)
    if not isinstance(obj, dict):
        raise ApiError(PARAM_EMPTY, f"{msgtype} object is required")
    if msgtype == "text":
        content = obj.get("content")
        if not content or not isinstance(content, str):
            raise ApiError(PARAM_EMPTY, "text.content is required")
        if utf8_len(content) > TEXT_MAX_BYTES:
            raise ApiError(45002, "text.content over 2048 bytes")
    elif msgtype in MEDIA_MSGTYPES:
        state.check_media(obj.get("media_id"))
    elif msgtype == "msgmenu" and len(obj.get("list") or []) > 10:
        raise ApiError(INVALID_PARAM, "msgmenu has more than 10 items")
    return msgtype


def _dedupe(state: EmulatorState, open_kfid: str, msgid: str | None) -> str | None:
    """An earlier send's msgid when `msgid` repeats.

    UNCONFIRMED: the doc only says msgid must be unique per account; returning the original msgid
    without sending again is an assumption (options.kf_duplicate_msgid = "dedupe" | "error").
    """
    if msgid is None or (open_kfid, msgid) not in state.world.kf_msgids:
        return None
    if state.options.kf_duplicate_msgid == "error":
        raise ApiError(INVALID_PARAM, "duplicate msgid")
    return state.world.kf_msgids[(open_kfid, msgid)]


def _record_sent(
    state: EmulatorState,
    open_kfid: str,
    body: dict[str, Any],
    msgid: str | None,
    via: str,
    external_userid: str,
) -> str:
    msgid = msgid or state.ids.text(32)
    state.world.kf_msgids[(open_kfid, msgid)] = msgid
    state.world.kf_sent.append(
        {
            "msgid": msgid,
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "via": via,
            "msgtype": body["msgtype"],
            body["msgtype"]: body[body["msgtype"]],
            "at": state.clock.timestamp(),
        }
    )
    return msgid


def send_msg(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Send as the kf account: state 0/1 only, ≤5 messages within 48 h of the customer's last message."""
    body, now = call.body, state.clock.timestamp()
    touser = body.get("touser")
    if not touser or not isinstance(touser, str):
        raise ApiError(41035, "touser is required")
    acct = kf_model.account(state, body.get("open_kfid"))
    msgid = _check_msgid(body)
    _check_content(state, body, SEND_MSGTYPES)
    original = _dedupe(state, acct.open_kfid, msgid)
    if original is not None:
        return ok(msgid=original)
    sess = kf_model.session(state, acct.open_kfid, touser)
    if sess.last_customer_msg_at is not None and now - sess.last_customer_msg_at > kf_model.WINDOW_SECONDS:
        raise ApiError(95002)
    if sess.state not in (0, 1):
        raise ApiError(95018, f"service_state={sess.state}")
    if sess.sent_since_customer_msg >= kf_model.WINDOW_MESSAGES:
        raise ApiError(95001)
    sess.sent_since_customer_msg += 1
    return ok(msgid=_record_sent(state, acct.open_kfid, body, msgid, "send_msg", touser))


def send_msg_on_event(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Answer an event code (enter_session welcome_code: 20 s, once; trans msg_code: state must hold)."""
    body, now = call.body, state.clock.timestamp()
    code = body.get("code")
    if not code or not isinstance(code, str):
        raise ApiError(PARAM_EMPTY, "code is required")
    msgid = _check_msgid(body)
    _check_content(state, body, frozenset({"text", "msgmenu"}))
    event_code = state.world.kf_event_codes.get(code)
    if event_code is not None:
        original = _dedupe(state, event_code.open_kfid, msgid)
        if original is not None:
            return ok(msgid=original)
    if event_code is None or event_code.used or now - event_code.issued_at > event_code.ttl_seconds:
        raise ApiError(state.options.kf_event_code_errcode, "invalid or expired code")
    sess = kf_model.session(state, event_code.open_kfid, event_code.external_userid)
    if event_code.required_state is not None and sess.state != event_code.required_state:
        raise ApiError(95018, f"service_state={sess.state}")
    event_code.used = True
    return ok(
        msgid=_record_sent(
            state, event_code.open_kfid, body, msgid, "send_msg_on_event", event_code.external_userid
        )
    )


def _session_for(state: EmulatorState, body: dict[str, Any]) -> KfSession:
    acct = kf_model.account(state, body.get("open_kfid"))
    external_userid = body.get("external_userid")
    if not external_userid or not isinstance(external_userid, str):
        raise ApiError(41035)
    if external_userid not in state.world.customers:
        raise ApiError(40096, external_userid)
    return kf_model.session(state, acct.open_kfid, external_userid)


def service_state_get(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """{service_state, servicer_userid (state 3 only)}."""
    sess = _session_for(state, call.body)
    payload: dict[str, Any] = {"service_state": sess.state}
    if sess.state == 3:
        payload["servicer_userid"] = sess.servicer_userid
    return ok(**payload)


def service_state_trans(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Move a session per the §8.5 table; msg_code on the first move to 2/3 and on ending (4)."""
    body = call.body
    sess = _session_for(state, body)
    target = body.get("service_state")
    if target not in (0, 1, 2, 3, 4):
        raise ApiError(INVALID_PARAM, "service_state must be 0..4")
    allowed = set(TRANSITIONS[sess.state])
    if state.options.kf_allow_end_from_unassigned and sess.state in (0, 1, 2):
        allowed.add(4)  # UNCONFIRMED whether 0/1/2 -> 4 is permitted
    if target not in allowed:
        raise ApiError(95016, f"{sess.state} -> {target}")
    servicer = ""
    if target == 3:
        servicer = body.get("servicer_userid") or ""
        acct = state.world.kf_accounts[sess.open_kfid]
        # §8.5: the servicer must belong to the account and be "receiving" (status 1), else 95014.
        if not servicer or acct.servicers.get(servicer) != 1:
            raise ApiError(95014, str(servicer))
    payload: dict[str, Any] = {}
    if target in (2, 3) and not sess.greeted:
        sess.greeted = True
        payload["msg_code"] = kf_model.issue_event_code(
            state, sess, ttl=kf_model.WINDOW_SECONDS, required_state=target
        )
    elif target == 4:
        payload["msg_code"] = kf_model.issue_event_code(state, sess, ttl=20.0, required_state=4)
    sess.state = target
    sess.servicer_userid = servicer if target == 3 else ""
    return ok(**payload)


ROUTES = [
    ApiSpec("/cgi-bin/kf/account/list", "POST|GET", account_list, KF_APPS),
    ApiSpec("/cgi-bin/kf/sync_msg", "POST", sync_msg, KF_APPS),
    ApiSpec("/cgi-bin/kf/send_msg", "POST", send_msg, KF_APPS),
    ApiSpec("/cgi-bin/kf/send_msg_on_event", "POST", send_msg_on_event, KF_APPS),
    ApiSpec("/cgi-bin/kf/service_state/get", "POST", service_state_get, KF_APPS),
    ApiSpec("/cgi-bin/kf/service_state/trans", "POST", service_state_trans, KF_APPS),
]
