"""externalcontact/send_welcome_msg (p/92599, p/92137 §5.4): 20 s, single use, 41096 while in flight."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.api_contact import CONTACT_APPS
from bot.wecom.emulator.common import INVALID_PARAM, PARAM_EMPTY, ApiCall, ApiError, ApiSpec, ok, utf8_len

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

TEXT_MAX_BYTES = 4000
MAX_ATTACHMENTS = 9
ATTACHMENT_TYPES = frozenset({"image", "link", "miniprogram", "video", "file"})


def check_attachments(state: EmulatorState, attachments: Any) -> None:
    """≤9 attachments of known msgtypes with fresh media (shared with mass sending, §7)."""
    if not isinstance(attachments, list):
        raise ApiError(INVALID_PARAM, "attachments must be a list")
    if len(attachments) > MAX_ATTACHMENTS:
        raise ApiError(41064)
    for item in attachments:
        msgtype = item.get("msgtype") if isinstance(item, dict) else None
        if msgtype not in ATTACHMENT_TYPES:
            raise ApiError(41065, str(msgtype))
        obj = item.get(msgtype)
        if not isinstance(obj, dict):
            raise ApiError(PARAM_EMPTY, f"{msgtype} object is required")
        if msgtype == "image":
            if obj.get("media_id"):
                state.check_media(obj["media_id"])
            elif not obj.get("pic_url"):
                raise ApiError(PARAM_EMPTY, "image.media_id or image.pic_url is required")
        elif msgtype in ("video", "file"):
            state.check_media(obj.get("media_id"))
        elif msgtype == "link":
            if not obj.get("title") or not obj.get("url"):
                raise ApiError(PARAM_EMPTY, "link.title and link.url are required")
            if utf8_len(str(obj["title"])) > 128 or utf8_len(str(obj.get("desc", ""))) > 512:
                raise ApiError(45002, "link title/desc too long")
        else:  # miniprogram
            if not all(obj.get(k) for k in ("title", "pic_media_id", "appid", "page")):
                raise ApiError(PARAM_EMPTY, "miniprogram needs title, pic_media_id, appid, page")
            if utf8_len(str(obj["title"])) > 64:
                raise ApiError(45002, "miniprogram title too long")
            state.check_media(obj["pic_media_id"])


def send_welcome_msg(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """Deliver the welcome message for a WelcomeCode."""
    body = call.body
    code = body.get("welcome_code")
    if not code:
        raise ApiError(41049)
    welcome = state.world.welcome_codes.get(code) if isinstance(code, str) else None
    ttl = state.settings.emulator.welcome_code_ttl_seconds
    if welcome is None or state.clock.timestamp() - welcome.issued_at > ttl:
        raise ApiError(41050)
    if welcome.status == "in_flight":
        raise ApiError(41096)
    if welcome.status == "used":
        raise ApiError(41051)
    text = body.get("text")
    content = text.get("content", "") if isinstance(text, dict) else ""
    attachments = body.get("attachments") or []
    if not content and not attachments:
        raise ApiError(PARAM_EMPTY, "text and attachments are both empty")
    if not isinstance(content, str) or utf8_len(content) > TEXT_MAX_BYTES:
        raise ApiError(45002, "text.content over 4000 bytes")
    check_attachments(state, attachments)
    welcome.status = "used"
    state.world.welcome_messages.append(
        {
            "welcome_code": welcome.code,
            "userid": welcome.userid,
            "external_userid": welcome.external_userid,
            "text": content,
            "attachments": attachments,
            "app": call.app,
            "at": state.clock.timestamp(),
        }
    )
    return ok()


ROUTES = [ApiSpec("/cgi-bin/externalcontact/send_welcome_msg", "POST", send_welcome_msg, CONTACT_APPS)]
