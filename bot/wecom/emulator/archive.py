"""The archive feed (会话内容存档): messages in the documented decrypted format, and msgaudit_notify.

The real archive is read with the Finance SDK (GetChatData + DecryptData); the emulator serves the
decrypted messages directly at GET /emulator/archive/chatdata?seq=&limit= as
{errcode, errmsg, chatdata: [{seq, msgid, publickey_ver, message}]}, where `message` has the
fields of https://developer.work.weixin.qq.com/document/path/91774 (msgid, action, from, tolist,
roomid, msgtime, msgtype, text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.wecom.emulator import payloads

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

FEED_PATH = "/emulator/archive/chatdata"
MAX_LIMIT = 1000


@dataclass
class ArchiveFeed:
    """Archived messages in seq order (seq starts at 1, as GetChatData's does after seq 0)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[tuple[int, int]] = field(default_factory=list)
    """(seq, limit) of every read, oldest first: where each pull started."""

    def append(self, message: dict[str, Any]) -> int:
        """Store a message; returns its seq."""
        self.messages.append(message)
        return len(self.messages)

    def after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Entries after `seq`, at most `limit` (≤ 1000)."""
        start = max(seq, 0)
        chunk = self.messages[start : start + min(max(limit, 1), MAX_LIMIT)]
        return [
            {"seq": start + i + 1, "msgid": m["msgid"], "publickey_ver": 1, "message": m}
            for i, m in enumerate(chunk)
        ]


def feed_of(state: Any) -> ArchiveFeed:
    """The state's archive feed (created on first use)."""
    feed = getattr(state, "archive_feed", None)
    if feed is None:
        feed = ArchiveFeed()
        state.archive_feed = feed
    return feed


def msgaudit_notify(corp_id: str, create_time: int, agent_id: int | str) -> str:
    """The msgaudit_notify event: new archive messages are ready (content is pulled)."""
    return payloads.xml_doc(
        [
            ("ToUserName", corp_id),
            ("FromUserName", "sys"),
            ("CreateTime", create_time),
            ("MsgType", "event"),
            ("AgentID", agent_id),
            ("Event", "msgaudit_notify"),
        ]
    )


def routes(state: EmulatorState) -> list[web.RouteDef]:
    """GET /emulator/archive/chatdata: the archive after a seq."""

    async def chat_data(request: web.Request) -> web.Response:
        try:
            seq = int(request.query.get("seq", "0"))
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return web.json_response({"errcode": 10000, "errmsg": "seq and limit must be integers"})
        if limit > MAX_LIMIT:
            return web.json_response({"errcode": 10000, "errmsg": "limit must be <= 1000"})
        feed = feed_of(state)
        feed.pulls.append((seq, limit))
        items = feed.after(seq, limit)
        return web.json_response({"errcode": 0, "errmsg": "ok", "chatdata": items})

    async def all_messages(request: web.Request) -> web.Response:
        return web.json_response(feed_of(state).messages)

    return [web.get(FEED_PATH, chat_data), web.get("/emulator/archive", all_messages)]
