"""Read-only views handlers get through `Deps` (the only state handlers read)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import func, select

from bot.deps import KfSessionView, TagSyncView, WelcomeHistory
from bot.store.db import Sessions
from bot.store.models import (
    Customer,
    CustomerTag,
    Follow,
    GroupMember,
    InboxRow,
    KfSession,
    Order,
    TimelineEntry,
)

K = TypeVar("K")
V = TypeVar("V")


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


class Coalesced(Generic[K, V]):
    """A reader whose lookups made in one turn of the event loop are answered by one batch query.

    Callbacks, inbox rows and outbox sends arrive in bursts and are handled concurrently, so a
    session and a few queries per item would cost more than the work itself. The first `get` of a
    turn schedules `_fetch` for every key asked for by then (`call_soon` runs after the tasks
    already ready); each caller gets its own answer, or the batch's exception.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._waiting: list[tuple[K, asyncio.Future[V]]] = []

    async def _get(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self._start)
        self._waiting.append((key, future))
        return await future

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.create_task(self._answer(batch), name=f"siyu-{type(self).__name__}")
        _LOOKUPS.add(task)
        task.add_done_callback(_LOOKUPS.discard)

    async def _answer(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            found = await self._fetch([key for key, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in batch:
            if not future.done():
                future.set_result(found[key])

    async def _fetch(self, keys: list[K]) -> dict[K, V]:
        """Answers for every key of a batch (keys may repeat)."""
        raise NotImplementedError


# Lookups in flight: the event loop keeps only weak references to tasks.
_LOOKUPS: set[asyncio.Task[None]] = set()


class WelcomeHistories(Coalesced[tuple[str, str, float], WelcomeHistory]):
    """Reads what the welcome rules need: the customer's live tags and whether they followed us before."""

    async def get(self, external_userid: str, userid: str, added_at: float) -> WelcomeHistory:
        """Tags, and follows other than the one this add created (a replayed add must not look returning)."""
        return await self._get((external_userid, userid, added_at))

    async def _fetch(
        self, keys: list[tuple[str, str, float]]
    ) -> dict[tuple[str, str, float], WelcomeHistory]:
        customers = sorted({key[0] for key in keys})
        async with self._sessions() as session:
            tag_rows = await session.execute(
                select(CustomerTag.external_userid, CustomerTag.tag_name).where(
                    CustomerTag.external_userid.in_(customers), CustomerTag.removed_at.is_(None)
                )
            )
            follow_rows = await session.execute(
                select(Follow.external_userid, Follow.userid, Follow.added_at).where(
                    Follow.external_userid.in_(customers)
                )
            )
            names = dict(
                (
                    await session.execute(
                        select(Customer.external_userid, Customer.name).where(
                            Customer.external_userid.in_(customers)
                        )
                    )
                ).all()
            )
        tags: dict[str, set[str]] = {}
        for customer, tag in tag_rows:
            tags.setdefault(customer, set()).add(tag)
        follows: dict[str, list[tuple[str, float]]] = {}
        for customer, guide, at in follow_rows:
            follows.setdefault(customer, []).append((guide, at))
        out = {}
        for customer, userid, added_at in keys:
            tag_set = frozenset(tags.get(customer, ()))
            earlier = any(guide != userid or at < added_at for guide, at in follows.get(customer, ()))
            out[(customer, userid, added_at)] = WelcomeHistory(
                tag_set, earlier or bool(tag_set), names.get(customer) or ""
            )
        return out


class CustomerNames(Coalesced[str, str]):
    """Customers' names (from externalcontact/get), for `{customer_name}` in what is sent."""

    async def get(self, external_userid: str) -> str:
        """The stored name, or "" while Siyu knows none."""
        return await self._get(external_userid)

    async def _fetch(self, keys: list[str]) -> dict[str, str]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(Customer.external_userid, Customer.name).where(
                    Customer.external_userid.in_(sorted(set(keys)))
                )
            )
            names = {customer: name or "" for customer, name in rows}
        return {key: names.get(key, "") for key in keys}


class LifecycleReader(Coalesced[tuple[str, float, tuple[str, ...]], "StoredFacts"]):
    """Reads what the lifecycle rules need about customers (bot/lifecycle.StageFacts), as stored now."""

    MESSAGE_KINDS = ("kf_message", "chat_message", "robot_message")

    async def get(
        self, external_userid: str, window_start: float, purchase_tags: tuple[str, ...]
    ) -> StoredFacts:
        """Stage, follows, groups, messages since `window_start`, orders and purchase tags of a customer."""
        return await self._get((external_userid, window_start, tuple(purchase_tags)))

    async def _fetch(
        self, keys: list[tuple[str, float, tuple[str, ...]]]
    ) -> dict[tuple[str, float, tuple[str, ...]], StoredFacts]:
        ids = sorted({key[0] for key in keys})
        since = min(key[1] for key in keys)
        tags = sorted({t for key in keys for t in key[2]})
        async with self._sessions() as session:
            customers = {
                c: (stage, last, unsub)
                for c, stage, last, unsub in await session.execute(
                    select(
                        Customer.external_userid,
                        Customer.stage,
                        Customer.last_message_at,
                        Customer.unsubscribed_at,
                    ).where(Customer.external_userid.in_(ids))
                )
            }
            follows: dict[str, list[float]] = {}
            for c, added in await session.execute(
                select(Follow.external_userid, Follow.added_at).where(
                    Follow.external_userid.in_(ids), Follow.ended_at.is_(None)
                )
            ):
                follows.setdefault(c, []).append(added)
            groups: dict[str, list[float]] = {}
            for c, joined in await session.execute(
                select(GroupMember.external_userid, GroupMember.joined_at).where(
                    GroupMember.external_userid.in_(ids), GroupMember.left_at.is_(None)
                )
            ):
                groups.setdefault(c, []).append(joined)
            messages: dict[str, list[float]] = {}
            for c, at in await session.execute(
                select(TimelineEntry.external_userid, TimelineEntry.occurred_at).where(
                    TimelineEntry.external_userid.in_(ids),
                    TimelineEntry.kind.in_(self.MESSAGE_KINDS),
                    TimelineEntry.occurred_at >= since,
                )
            ):
                messages.setdefault(c, []).append(at)
            orders = dict(
                (
                    await session.execute(
                        select(Order.external_userid, func.max(Order.paid_at))
                        .where(Order.external_userid.in_(ids))
                        .group_by(Order.external_userid)
                    )
                ).all()
            )
            tagged: dict[tuple[str, str], float] = {}
            if tags:
                for c, tag, added in await session.execute(
                    select(CustomerTag.external_userid, CustomerTag.tag_name, CustomerTag.added_at).where(
                        CustomerTag.external_userid.in_(ids),
                        CustomerTag.tag_name.in_(tags),
                        CustomerTag.removed_at.is_(None),
                    )
                ):
                    tagged[(c, tag)] = added
        out = {}
        for key in keys:
            customer, window_start, purchase_tags = key
            stage, last, unsub = customers.get(customer, (None, None, None))
            follow_times = follows.get(customer, [])
            group_times = groups.get(customer, [])
            tag_times = [tagged[(customer, t)] for t in purchase_tags if (customer, t) in tagged]
            out[key] = StoredFacts(
                stage=stage or None,
                follows=len(follow_times),
                added_at=min(follow_times) if follow_times else None,
                in_groups=len(group_times),
                joined_group_at=max(group_times) if group_times else None,
                messages_in_window=sum(1 for at in messages.get(customer, []) if at >= window_start),
                last_message_at=last,
                last_purchase_at=orders.get(customer),
                purchase_tagged_at=max(tag_times) if tag_times else None,
                unsubscribed=unsub is not None,
            )
        return out


@dataclass(frozen=True)
class StoredFacts:
    """A customer's lifecycle facts as epoch seconds (the handler turns them into StageFacts)."""

    stage: str | None = None
    follows: int = 0
    added_at: float | None = None
    in_groups: int = 0
    joined_group_at: float | None = None
    messages_in_window: int = 0
    last_message_at: float | None = None
    last_purchase_at: float | None = None
    purchase_tagged_at: float | None = None
    unsubscribed: bool = False
