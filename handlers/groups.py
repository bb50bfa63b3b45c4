"""Groups: who is in each customer group, from groupchat/get after every change_external_chat.

Triggers: change_external_chat create, update with add_member / del_member, dismiss.
Actions: RefreshGroup (the sender diffs groupchat/get with group_members, stores SetGroupMembers
and schedules a `stage_check` for each customer who joined or left). A dismissed group is a
RefreshGroup too, marked so the sender does not ask WeCom and empties the group: its customers
get their group_left checks, and the refresh waits in the group's outbox partition behind earlier
refreshes, which a direct SetGroupMembers would not (a late refresh could refill the group).
Idempotency: RefreshGroup is keyed by the chat and the event's dedup key; SetGroupMembers is a
fixed state. Config: none.
"""

from __future__ import annotations

from bot import actions as act
from bot import events as ev
from bot.actions import Action
from bot.deps import Deps
from bot.router import Router
from bot.senders import GROUP_DISMISSED

router = Router("groups")

MEMBER_CHANGES = ("add_member", "del_member")


def group_actions(event: ev.GroupEvent) -> list[Action]:
    """What a customer-group event means for membership."""
    match event:
        case ev.GroupDismissed():
            return [act.RefreshGroup(event.chat_id, reason_key=GROUP_DISMISSED + event.dedup_key)]
        case ev.GroupUpdated(update_detail=detail) if detail not in MEMBER_CHANGES:
            return []  # owner, name or notice: nobody joined or left
    return [act.RefreshGroup(event.chat_id, reason_key=event.dedup_key)]


@router.on(ev.GroupCreated, ev.GroupUpdated, ev.GroupDismissed)
def on_group(event: ev.GroupEvent, deps: Deps) -> list[Action]:
    """Customer-group changes."""
    return group_actions(event)
