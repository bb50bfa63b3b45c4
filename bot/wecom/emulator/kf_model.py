"""微信客服 bookkeeping shared by the kf APIs and the simulations (p/94670, p/94669)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.common import ApiError
from bot.wecom.emulator.world import KfAccount, KfEventCode, KfLogItem, KfSession

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

SYNC_TOKEN_TTL = 600.0  # kf_msg_or_event Token valid 10 min (p/94670)
RETENTION_SECONDS = 3 * 86400  # sync_msg returns the last 3 days
WINDOW_SECONDS = 48 * 3600  # 5 messages within 48 h after the customer's last message (p/94677)
WINDOW_MESSAGES = 5
ENTER_SESSION_CODE_TTL = 20.0
OPEN_KFID_PREFIX = "wk"


def account(state: EmulatorState, open_kfid: Any) -> KfAccount:
    """The kf account: 95000 missing/malformed, 95004 nonexistent."""
    if not open_kfid or not isinstance(open_kfid, str) or not open_kfid.startswith(OPEN_KFID_PREFIX):
        raise ApiError(95000, str(open_kfid or ""))
    found = state.world.kf_accounts.get(open_kfid)
    if found is None:
        raise ApiError(95004, open_kfid)
    return found


def session(state: EmulatorState, open_kfid: str, external_userid: str) -> KfSession:
    """The (account, customer) session, created in state 4 ("not started")."""
    key = (open_kfid, external_userid)
    found = state.world.kf_sessions.get(key)
    if found is None:
        found = state.world.kf_sessions[key] = KfSession(open_kfid=open_kfid, external_userid=external_userid)
    return found


def append_log(state: EmulatorState, open_kfid: str, item: dict[str, Any]) -> dict[str, Any]:
    """Add one sync_msg item (msgid and send_time filled in) to the account's log."""
    state.world.kf_seq += 1
    now = int(state.clock.timestamp())
    item = {
        "msgid": item.get("msgid") or state.ids.text(32),
        "open_kfid": open_kfid,
        "send_time": now,
        **item,
    }
    item["send_time"] = now
    state.world.kf_log.setdefault(open_kfid, []).append(
        KfLogItem(seq=state.world.kf_seq, send_time=now, item=item)
    )
    return item


def issue_sync_token(state: EmulatorState) -> str:
    """A fresh kf_msg_or_event Token."""
    token = "ENC" + state.ids.text(40)
    state.world.kf_tokens[token] = state.clock.timestamp()
    return token


def issue_event_code(state: EmulatorState, sess: KfSession, *, ttl: float, required_state: int | None) -> str:
    """A code for kf/send_msg_on_event (welcome_code or a trans msg_code), single use."""
    code = state.ids.text(43)
    state.world.kf_event_codes[code] = KfEventCode(
        code=code,
        open_kfid=sess.open_kfid,
        external_userid=sess.external_userid,
        issued_at=state.clock.timestamp(),
        ttl_seconds=ttl,
        required_state=required_state,
    )
    return code


def customer_message(state: EmulatorState, sess: KfSession) -> None:
    """A customer message: 4 -> 0 and the 5-message / 48 h window starts again (p/94677)."""
    if sess.state == 4:
        sess.state = 0
        sess.servicer_userid = ""
        sess.greeted = False
    sess.last_customer_msg_at = state.clock.timestamp()
    sess.sent_since_customer_msg = 0
