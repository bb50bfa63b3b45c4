"""Performs state actions inside the caller's transaction and turns WeCom actions into outbox rows.

Every write here is idempotent (insert-if-absent on a unique key, or an update to a fixed
state), so replaying an event after a crash or a `siyu inbox replay` changes nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import actions as act
from bot.clock import Clock
from bot.store.models import (
    CorpTag,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Follow,
    HandoffRequest,
    KfSession,
    OutboxRow,
    Suggestion,
    TimelineEntry,
    TimerRow,
    WelcomeAssignment,
)
from bot.store.notify import notify
from bot.store.sql import insert_ignore


class Effects:
    """Applies actions; wakes the outbox and the scheduler after a commit that gave them work."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.outbox_wakeup = asyncio.Event()
        self.timer_wakeup = asyncio.Event()

    async def apply(self, session: AsyncSession, actions: Sequence[act.Action], *, source: str) -> None:
        """Apply every action in `session` (the caller commits)."""
        if any(isinstance(a, act.WeComAction) for a in actions):
            await notify(session, "outbox")
        if any(isinstance(a, act.Schedule) for a in actions):
            await notify(session, "timers")
        for action in actions:
            match action:
                case act.WeComAction():
                    await self.enqueue(session, action, source=source)
                case act.UpsertCustomer():
                    await self.upsert_customer(session, action)
                case act.UpdateCustomerProfile():
                    await self._update_profile(session, action)
                case act.UpsertFollow():
                    await self._upsert_follow(session, action)
                case act.EndFollow():
                    await self._end_follow(session, action)
                case act.RecordTimeline():
                    await self.record(session, action)
                case act.Schedule():
                    await self._schedule(session, action)
                case act.UpdateKfSession():
                    await self._update_kf_session(session, action)
                case act.RecordHandoff():
                    await session.execute(
                        insert_ignore(session, HandoffRequest).values(
                            source_key=action.source_key[:255],
                            open_kfid=action.open_kfid,
                            external_userid=action.external_userid,
                            reason=action.reason,
                            outside_hours=action.outside_hours,
                            status="open",
                            requested_at=action.at,
                        )
                    )
                case act.SuggestToGuide():
                    await session.execute(
                        insert_ignore(session, Suggestion).values(
                            source_key=action.source_key[:255],
                            external_userid=action.external_userid,
                            userid=action.userid,
                            query=action.query,
                            faq_id=action.faq_id,
                            score=action.score,
                            band=action.band,
                            reply=action.reply,
                            status="new",
                            created_at=action.at,
                        )
                    )
                case act.CancelTimer():
                    await session.execute(
                        update(TimerRow)
                        .where(TimerRow.key == action.key, TimerRow.status == "pending")
                        .values(status="cancelled")
                    )
                case act.TagCustomer():
                    await self._tag_customer(session, action)
                case act.SetAttribute():
                    await self._set_attribute(session, action)
                case act.AddLeadScore():
                    await self._add_lead_score(session, action)
                case act.MarkTagsSynced():
                    await session.execute(
                        update(CustomerTag)
                        .where(
                            CustomerTag.external_userid == action.external_userid,
                            CustomerTag.tag_name.in_(action.tags),
                            CustomerTag.removed_at.is_(None),
                        )
                        .values(synced_at=action.at)
                    )
                case act.StoreCorpTags():
                    await self._store_corp_tags(session, action)
                case act.RecordWelcomeAssignment():
                    # The first assignment sticks: a re-add keeps the script and variant it got.
                    await session.execute(
                        insert_ignore(session, WelcomeAssignment).values(
                            external_userid=action.external_userid,
                            userid=action.userid,
                            script_id=action.script_id,
                            variant=action.variant,
                            welcome_code=action.welcome_code[:255],
                            assigned_at=action.at,
                        )
                    )
                case _:
                    raise TypeError(f"no effect for {type(action).__name__}")

    def after_commit(self, actions: Iterable[act.Action]) -> None:
        """Wake the workers that got new work."""
        for action in actions:
            if isinstance(action, act.WeComAction):
                self.outbox_wakeup.set()
            elif isinstance(action, act.Schedule):
                self.timer_wakeup.set()

    async def enqueue(self, session: AsyncSession, action: act.WeComAction, *, source: str) -> None:
        """Insert the outbox row for `action` unless its idempotency key exists."""
        now = self._clock.timestamp()
        await session.execute(
            insert_ignore(session, OutboxRow).values(
                idem_key=action.idem_key,
                kind=action.kind,
                payload=action.payload(),
                status="pending",
                attempts=0,
                source=source[:255],
                partition_key=action.partition,
                created_at=now,
                available_at=now,
                deadline_at=action.deadline(now),
            )
        )

    async def upsert_customer(self, session: AsyncSession, action: act.UpsertCustomer) -> None:
        """Create the customer row if absent; remember the first channel."""
        at = action.seen_at or self._clock.timestamp()
        await session.execute(
            insert_ignore(session, Customer).values(
                external_userid=action.external_userid,
                first_state=action.first_state,
                status="active",
                first_seen_at=at,
                updated_at=at,
            )
        )
        if action.first_state:
            await session.execute(
                update(Customer)
                .where(Customer.external_userid == action.external_userid, Customer.first_state == "")
                .values(first_state=action.first_state)
            )

    async def _update_profile(self, session: AsyncSession, action: act.UpdateCustomerProfile) -> None:
        await self.upsert_customer(session, act.UpsertCustomer(action.external_userid))
        await session.execute(
            update(Customer)
            .where(Customer.external_userid == action.external_userid)
            .values(
                name=action.name,
                avatar=action.avatar,
                gender=action.gender,
                unionid=action.unionid,
                customer_type=action.customer_type,
                updated_at=self._clock.timestamp(),
            )
        )

    async def _upsert_follow(self, session: AsyncSession, action: act.UpsertFollow) -> None:
        at = action.added_at or self._clock.timestamp()
        # Insert-if-absent then update: safe when the inbox and the outbox touch one pair at once.
        await session.execute(
            insert_ignore(session, Follow).values(
                external_userid=action.external_userid,
                userid=action.userid,
                status=action.status,
                state=action.state,
                remark=action.remark,
                add_way=action.add_way,
                added_at=at,
                updated_at=at,
            )
        )
        follow = await session.scalar(
            select(Follow).where(
                Follow.external_userid == action.external_userid, Follow.userid == action.userid
            )
        )
        assert follow is not None
        if follow.ended_at is not None:
            # Re-added after a deletion: the relation is live again; history stays on the timeline.
            follow.ended_at, follow.ended_reason, follow.added_at = None, "", at
        follow.status = action.status
        follow.state = action.state or follow.state
        follow.remark = action.remark or follow.remark
        follow.add_way = action.add_way or follow.add_way
        follow.updated_at = at
        await session.execute(
            update(Customer).where(Customer.external_userid == action.external_userid).values(status="active")
        )

    async def _end_follow(self, session: AsyncSession, action: act.EndFollow) -> None:
        at = action.ended_at or self._clock.timestamp()
        await session.execute(
            update(Follow)
            .where(
                Follow.external_userid == action.external_userid,
                Follow.userid == action.userid,
                Follow.ended_at.is_(None),
            )
            .values(status=action.reason, ended_at=at, ended_reason=action.reason, updated_at=at)
        )
        live = await session.scalar(
            select(Follow.id).where(
                Follow.external_userid == action.external_userid, Follow.ended_at.is_(None)
            )
        )
        if live is None:
            # No guide follows the customer any more: keep the profile, mark it so reports can tell.
            await session.execute(
                update(Customer)
                .where(Customer.external_userid == action.external_userid)
                .values(status="no_follow", updated_at=at)
            )

    async def record(self, session: AsyncSession, action: act.RecordTimeline) -> None:
        """Append a timeline entry unless one with the same source key exists."""
        await session.execute(
            insert_ignore(session, TimelineEntry).values(
                source_key=action.source_key[:255],
                external_userid=action.external_userid,
                kind=action.kind,
                summary=action.summary[:512],
                data=action.data,
                occurred_at=action.occurred_at,
                recorded_at=self._clock.timestamp(),
            )
        )

    async def _update_kf_session(self, session: AsyncSession, action: act.UpdateKfSession) -> None:
        await session.execute(
            insert_ignore(session, KfSession).values(
                open_kfid=action.open_kfid,
                external_userid=action.external_userid,
                mode="bot",
                misses=0,
                last_customer_at=0.0,
                sent_since_customer=0,
                updated_at=action.at,
            )
        )
        row = await session.get(KfSession, (action.open_kfid, action.external_userid), populate_existing=True)
        assert row is not None
        if action.customer_wrote:
            # A customer message opens a fresh 48 h window and resets the 5-message count (§8.3).
            row.last_customer_at, row.sent_since_customer = action.at, 0
        row.sent_since_customer += action.sent
        if action.mode is not None:
            if action.mode != row.mode:
                row.handed_off_at = action.at if action.mode == "human" else None
            row.mode = action.mode
        if action.misses is not None:
            row.misses = action.misses
        row.updated_at = action.at

    async def _schedule(self, session: AsyncSession, action: act.Schedule) -> None:
        await session.execute(
            insert_ignore(session, TimerRow).values(
                key=action.key,
                kind=action.kind,
                payload=action.payload,
                status="pending",
                attempts=0,
                due_at=action.due_at,
                created_at=self._clock.timestamp(),
            )
        )

    async def _tag_customer(self, session: AsyncSession, action: act.TagCustomer) -> None:
        await session.execute(
            insert_ignore(session, CustomerTag).values(
                external_userid=action.external_userid,
                tag_name=action.tag,
                group_name=action.group,
                source=action.rule[:128],
                source_key=action.source_key[:255],
                added_at=action.at,
            )
        )
        # A tag removed earlier and said again is live again, and WeCom must hear of it again.
        await session.execute(
            update(CustomerTag)
            .where(
                CustomerTag.external_userid == action.external_userid,
                CustomerTag.tag_name == action.tag,
                CustomerTag.removed_at.is_not(None),
            )
            .values(
                removed_at=None,
                synced_at=None,
                source=action.rule[:128],
                source_key=action.source_key[:255],
                added_at=action.at,
            )
        )

    async def _set_attribute(self, session: AsyncSession, action: act.SetAttribute) -> None:
        values = {
            "value": action.value[:255],
            "source_rule": action.rule[:128],
            "source_key": action.source_key[:255],
            "source_text": action.source_text[:255],
            "recorded_at": action.at,
        }
        await session.execute(
            insert_ignore(session, CustomerAttribute).values(
                external_userid=action.external_userid, key=action.key, **values
            )
        )
        # Latest message wins; a replayed older message must not overwrite what a newer one said.
        await session.execute(
            update(CustomerAttribute)
            .where(
                CustomerAttribute.external_userid == action.external_userid,
                CustomerAttribute.key == action.key,
                CustomerAttribute.recorded_at <= action.at,
            )
            .values(**values)
        )

    async def _add_lead_score(self, session: AsyncSession, action: act.AddLeadScore) -> None:
        # The points are a timeline entry unique by source key; the score is their sum, so a replayed
        # message (same key) changes nothing, whatever happened to the first attempt.
        await self.record(
            session,
            act.RecordTimeline(
                action.external_userid,
                "lead_score",
                f"线索分 +{action.points}",
                action.at,
                f"score:{action.source_key}",
                {"points": action.points},
            ),
        )
        await self.upsert_customer(session, act.UpsertCustomer(action.external_userid, seen_at=action.at))
        rows = await session.scalars(
            select(TimelineEntry.data).where(
                TimelineEntry.external_userid == action.external_userid, TimelineEntry.kind == "lead_score"
            )
        )
        total = sum(int((data or {}).get("points", 0)) for data in rows)
        await session.execute(
            update(Customer)
            .where(Customer.external_userid == action.external_userid)
            .values(lead_score=total)
        )

    async def _store_corp_tags(self, session: AsyncSession, action: act.StoreCorpTags) -> None:
        seen: set[tuple[str, str]] = set()
        for group_name, tag_name, group_id, tag_id in action.tags:
            seen.add((group_name, tag_name))
            await session.execute(
                insert_ignore(session, CorpTag).values(
                    group_name=group_name[:64],
                    tag_name=tag_name[:64],
                    group_id=group_id,
                    tag_id=tag_id,
                    deleted=False,
                    updated_at=action.at,
                )
            )
            await session.execute(
                update(CorpTag)
                .where(CorpTag.group_name == group_name[:64], CorpTag.tag_name == tag_name[:64])
                .values(group_id=group_id, tag_id=tag_id, deleted=False, updated_at=action.at)
            )
        if action.complete:
            for row in await session.scalars(select(CorpTag).where(CorpTag.deleted.is_(False))):
                if (row.group_name, row.tag_name) not in seen:
                    row.deleted, row.updated_at = True, action.at
