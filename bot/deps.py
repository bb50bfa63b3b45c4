"""What handlers may read: given to every handler, built once per app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.clock import Clock
from bot.config import Settings


@dataclass(frozen=True)
class KfSessionView:
    """The bot's view of one kf session, as handlers read it."""

    mode: str = "bot"
    misses: int = 0
    last_customer_at: float = 0.0
    sent_since_customer: int = 0
    newer_messages: int = 0


class KfSessionReader(Protocol):
    """Reads the bot's kf session state (the store implements it)."""

    async def get(self, open_kfid: str, external_userid: str) -> KfSessionView: ...


@dataclass(frozen=True)
class Deps:
    """Handler dependencies: clock, settings, the content snapshot getter and state readers."""

    clock: Clock
    settings: Settings
    content: Callable[[], Any] = lambda: None
    kf_sessions: KfSessionReader | None = None
