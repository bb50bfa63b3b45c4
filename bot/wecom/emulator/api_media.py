"""Temporary media: media/upload (p/90253 §12); media_ids live 3 days on the injected clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.wecom.emulator.common import ApiCall, ApiError, ApiSpec, ok
from bot.wecom.emulator.world import Media

if TYPE_CHECKING:
    from bot.wecom.emulator.state import EmulatorState

MB = 1024 * 1024
MAX_BYTES = {"image": 10 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
MIN_BYTES = 5  # "all files > 5 bytes"


async def upload(state: EmulatorState, call: ApiCall) -> dict[str, Any]:
    """multipart part `media` -> {type, media_id, created_at (string)}."""
    media_type = call.query.get("type", "")
    if media_type not in MAX_BYTES:
        raise ApiError(40004, media_type)
    assert call.request is not None
    filename, content_type, data = "", "", b""
    found = False
    if call.request.content_type.startswith("multipart/"):
        reader = await call.request.multipart()
        async for part in reader:
            if getattr(part, "name", None) == "media" and hasattr(part, "read"):
                filename = part.filename or ""
                content_type = part.headers.get("Content-Type", "")
                data = bytes(await part.read(decode=False))
                found = True
                break
    call.journal_body = (
        {
            "multipart": {
                "name": "media",
                "filename": filename,
                "content_type": content_type,
                "size": len(data),
            }
        }
        if found
        else {"multipart": None}
    )
    if not data:
        raise ApiError(44001)
    if len(data) <= MIN_BYTES:
        raise ApiError(40006, "file must be larger than 5 bytes")
    if len(data) > MAX_BYTES[media_type]:
        raise ApiError(40009 if media_type == "image" else 45001)
    now = int(state.clock.timestamp())
    media = Media(
        media_id=state.new_media_id(), type=media_type, created_at=now, size=len(data), filename=filename
    )
    state.world.media[media.media_id] = media
    return ok(type=media_type, media_id=media.media_id, created_at=str(now))


ROUTES = [ApiSpec("/cgi-bin/media/upload", "POST", upload, multipart=True)]
