"""App messages to members: message/send (p/90236 §9.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.common import INVALID_PARAM, ApiCall, ApiError, ApiSpec, ok, utf8_len

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

TEXT_MAX_BYTES = 2048
MSGTYPES = frozenset({"text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown"})
MEDIA_MSGTYPES = frozenset({"image", "voice", "video", "file"})


def send(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Send to members `touser` ("a|b" or "@all"); unknown members come back in invaliduser."""
    body = call.body
    agentid = body.get("agentid")
    if agentid in (None, ""):
        raise ApiError(41011)  # "missing agentid" (p/90313)
    caller = state.settings.app(call.app) if call.app else None
    if caller is None or str(caller.agent_id) != str(agentid):
        raise ApiError(40056, str(agentid))  # the token must belong to that agent
    msgtype = body.get("msgtype")
    if msgtype not in MSGTYPES:
        raise ApiError(40008, str(msgtype))
    obj = body.get(msgtype)
    if not isinstance(obj, dict):
        raise ApiError(INVALID_PARAM, f"{msgtype} object is required")
    if msgtype == "text":
        content = obj.get("content")
        if not content or not isinstance(content, str):
            raise ApiError(INVALID_PARAM, "text.content is required")
        if utf8_len(content) > TEXT_MAX_BYTES:
            raise ApiError(45002, "text.content over 2048 bytes")
    if msgtype in MEDIA_MSGTYPES:
        state.check_media(obj.get("media_id"))
    touser = str(body.get("touser") or "")
    toparty, totag = str(body.get("toparty") or ""), str(body.get("totag") or "")
    if touser == "@all":
        valid, invalid = list(state.world.staff), []
    else:
        users = [u for u in touser.split("|") if u]
        valid = [u for u in users if u in state.world.staff]
        invalid = [u for u in users if u not in state.world.staff]
    # Parties and tags are not modelled: they are accepted as given.
    if not valid and not toparty and not totag:
        raise ApiError(81013)
    msgid = state.ids.text(40)
    state.world.app_messages.append(
        {
            "msgid": msgid,
            "agentid": agentid,
            "touser": valid,
            "msgtype": msgtype,
            msgtype: obj,
            "at": state.clock.timestamp(),
        }
    )
    payload: dict[str, Any] = {"invaliduser": "|".join(invalid), "msgid": msgid}
    if toparty:
        payload["invalidparty"] = ""
    if totag:
        payload["invalidtag"] = ""
    return ok(**payload)


ROUTES = [ApiSpec("/cgi-bin/message/send", "POST", send)]
