"""微信客服 plumbing: a kf_msg_or_event callback becomes a pull of kf/sync_msg.

Triggers: KfMessagesWaiting. Actions: SyncKf (idempotent per callback Token). The pull itself
(`bot/effects.py`) stores every pulled message as an inbox row keyed by its msgid, and the
cursor after them in the same transaction, so nothing is lost and nothing is handled twice.
"""

from __future__ import annotations

from bot import actions as act
from bot import events as ev
from bot.deps import Deps
from bot.router import Router

router = Router("kf_sync")


@router.on(ev.KfMessagesWaiting)
def on_messages_waiting(event: ev.KfMessagesWaiting, deps: Deps) -> list[act.Action]:
    """Pull the account's new messages."""
    return [act.SyncKf(event.open_kfid, event.token)]
