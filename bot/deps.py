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
class TagSyncView:
    """What a tag sync needs: the customer's tags WeCom has not got yet, and the guides who follow."""

    tags: tuple[tuple[str, str], ...] = ()
    """(group, tag) names not yet marked in WeCom."""
    guides: tuple[str, ...] = ()
    """userids of the guides with a live follow relation."""


class CustomerTagReader(Protocol):
    """Reads a customer's tags for the WeCom sync (the store implements it)."""

    async def pending_sync(self, external_userid: str) -> TagSyncView: ...


@dataclass(frozen=True)
class WelcomeHistory:
    """What a welcome rule may know about a customer who just added a guide."""

    tags: frozenset[str] = frozenset()
    returning: bool = False
    """True when the customer followed one of our guides before this add, or has tags."""
    name: str = ""
    """Her name as stored (an earlier add's externalcontact/get); "" for someone new."""


class WelcomeHistoryReader(Protocol):
    """Reads a customer's tags and past follows for the welcome rules (the store implements it)."""

    async def get(self, external_userid: str, userid: str, added_at: float) -> WelcomeHistory: ...


@dataclass(frozen=True)
class Deps:
    """Handler dependencies: clock, settings, the content snapshot getter and state readers."""

    clock: Clock
    settings: Settings
    content: Callable[[], Any] = lambda: None
    kf_sessions: KfSessionReader | None = None
    welcome_history: WelcomeHistoryReader | None = None
    customer_tags: CustomerTagReader | None = None
    lifecycle: Any = None
    """bot.store.readers.LifecycleReader: a customer's stored lifecycle facts."""
    playbooks: Callable[[], Any] = lambda: None
    """The current bot.playbooks.PlaybookSet (None until loaded)."""
    stages: Callable[[], Any] = lambda: None
    """The current bot.lifecycle.StagesConfig (None until loaded)."""
