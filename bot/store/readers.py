"""Read-only views handlers get through `Deps` (the only state handlers read)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.deps import KfSessionView, TagSyncView, WelcomeHistory
from bot.store.db import Sessions
from bot.store.models import CustomerTag, Follow, InboxRow, KfSession


class KfSessions:
    """Reads the bot's kf session rows."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def get(self, open_kfid: str, external_userid: str) -> KfSessionView:
        """The session's state, and how many of the customer's messages wait behind the current one."""
        async with self._sessions() as session:
            row = await session.get(KfSession, (open_kfid, external_userid))
            # The message being handled is one of these rows (processing); the rest arrived after it.
            waiting = await session.scalar(
                select(func.count())
                .select_from(InboxRow)
                .where(
                    InboxRow.partition_key == f"cust:{external_userid}",
                    InboxRow.kind == "KfCustomerMessage",
                    InboxRow.status.in_(("pending", "processing")),
                )
            )
        newer = max(0, (waiting or 0) - 1)
        if row is None:
            return KfSessionView(newer_messages=newer)
        return KfSessionView(row.mode, row.misses, row.last_customer_at, row.sent_since_customer, newer)


class CustomerTags:
    """Reads customers' tags and follow relations for the WeCom tag sync."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def pending_sync(self, external_userid: str) -> TagSyncView:
        """Live tags not yet marked in WeCom, and the guides who follow the customer now."""
        async with self._sessions() as session:
            tags = await session.execute(
                select(CustomerTag.group_name, CustomerTag.tag_name)
                .where(
                    CustomerTag.external_userid == external_userid,
                    CustomerTag.removed_at.is_(None),
                    CustomerTag.synced_at.is_(None),
                )
                .order_by(CustomerTag.id)
            )
            guides = await session.scalars(
                select(Follow.userid)
                .where(
                    Follow.external_userid == external_userid,
                    Follow.ended_at.is_(None),
                    # A half add (免验证, not yet accepted) is no relation mark_tag accepts.
                    Follow.status == "active",
                )
                .order_by(Follow.id)
            )
            return TagSyncView(tuple((g, t) for g, t in tags), tuple(guides))


class WelcomeHistories:
    """Reads what the welcome rules need: the customer's live tags and whether they followed us before."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def get(self, external_userid: str, userid: str, added_at: float) -> WelcomeHistory:
        """Tags, and follows other than the one this add created (a replayed add must not look returning)."""
        async with self._sessions() as session:
            tags = await session.scalars(
                select(CustomerTag.tag_name).where(
                    CustomerTag.external_userid == external_userid, CustomerTag.removed_at.is_(None)
                )
            )
            tag_set = frozenset(tags)
            earlier = await session.scalar(
                select(func.count())
                .select_from(Follow)
                .where(
                    Follow.external_userid == external_userid,
                    (Follow.userid != userid) | (Follow.added_at < added_at),
                )
            )
        return WelcomeHistory(tag_set, bool(earlier) or bool(tag_set))
