"""Performs state actions inside the caller's transaction and turns WeCom actions into outbox rows.

Every write here is idempotent (insert-if-absent on a unique key, or an update to a fixed
state), so replaying an event after a crash or a `siyu inbox replay` changes nothing twice.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import actions as act
from bot.clock import Clock
from bot.store.models import (
    CorpTag,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Enrollment,
    Follow,
    GroupMember,
    HandoffRequest,
    KfSession,
    MassTask,
    Order,
    OutboxRow,
    Suggestion,
    TimelineEntry,
    TimerRow,
    WelcomeAssignment,
)
from bot.store.notify import notify
from bot.store.sql import insert_ignore, insert_rows


class Effects:
    """Applies actions; wakes the outbox and the scheduler after a commit that gave them work."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.outbox_wakeup = asyncio.Event()
        self.timer_wakeup = asyncio.Event()
        self.sop_wakeup = asyncio.Event()

    async def apply(self, session: AsyncSession, actions: Sequence[act.Action], *, source: str) -> None:
        """Apply every action in `session` (the caller commits)."""
        await self.apply_batch(session, [(actions, source)])

    async def apply_batch(
        self, session: AsyncSession, batch: Sequence[tuple[Sequence[act.Action], str]]
    ) -> None:
        """Apply the actions of several events (each with its source key) in `session`.

        Actions are grouped by phase (customers before follows, state before sends) and runs of one
        kind become a single executemany: a batch of N events costs a few statements per kind, not
        a dozen per event. Callers pass events of different customers (the inbox claims one row
        per partition), and every effect is insert-if-absent or an update to a fixed state, so the
        grouping gives the same rows as applying each event in turn.
        """
        phases: list[list[tuple[act.Action, str]]] = [[] for _ in _PHASES]
        for actions, source in batch:
            for action in actions:
                phases[_phase_of(action)].append((action, source))
        if phases[_PHASE_INDEX[act.WeComAction]]:
            await notify(session, "outbox")
        if any(isinstance(a, act.Schedule) for a, _ in phases[_PHASE_INDEX[act.Schedule]]):
            await notify(session, "timers")
        if phases[_PHASE_INDEX[act.Enroll]] or phases[_PHASE_INDEX[act.RecordReaction]]:
            await notify(session, "sop")
        for items in phases:
            for kind, run in _runs(items):
                await self._APPLIERS[kind](self, session, run)

    def after_commit(self, actions: Iterable[act.Action]) -> None:
        """Wake the workers that got new work."""
        for action in actions:
            if isinstance(action, act.WeComAction):
                self.outbox_wakeup.set()
            elif isinstance(action, act.Schedule):
                self.timer_wakeup.set()
            elif isinstance(action, (act.Enroll, act.RecordReaction)):
                self.sop_wakeup.set()

    async def enqueue(self, session: AsyncSession, action: act.WeComAction, *, source: str) -> None:
        """Insert the outbox row for `action` unless its idempotency key exists."""
        await self._enqueue(session, [(action, source)])

    async def upsert_customer(self, session: AsyncSession, action: act.UpsertCustomer) -> None:
        """Create the customer row if absent; remember the first channel."""
        await self._upsert_customers(session, [(action, "")])

    async def record(self, session: AsyncSession, action: act.RecordTimeline) -> None:
        """Append a timeline entry unless one with the same source key exists."""
        await self._record_timeline(session, [(action, "")])

    # ---------------------------------------------------------------------- batched appliers

    async def _enqueue(self, session: AsyncSession, items: Run) -> None:
        now = self._clock.timestamp()
        await _insert_many(
            session,
            OutboxRow,
            [
                {
                    "idem_key": a.idem_key,
                    "kind": a.kind,
                    "payload": a.payload(),
                    "status": "pending",
                    "attempts": 0,
                    "source": source[:255],
                    "partition_key": a.partition,
                    "created_at": now,
                    "available_at": now,
                    "deadline_at": a.deadline(now),
                }
                for a, source in items
            ],
        )

    async def _upsert_customers(self, session: AsyncSession, items: Run) -> None:
        now = self._clock.timestamp()
        rows = [
            {
                "external_userid": a.external_userid,
                "first_state": a.first_state,
                "status": "active",
                "first_seen_at": a.seen_at or now,
                "updated_at": a.seen_at or now,
            }
            for a, _ in items
        ]
        await _insert_many(session, Customer, rows)
        firsts = [{"b_id": a.external_userid, "b_state": a.first_state} for a, _ in items if a.first_state]
        if firsts:
            table = Customer.__table__
            await session.execute(
                update(table)
                .where(table.c.external_userid == bindparam("b_id"), table.c.first_state == "")
                .values(first_state=bindparam("b_state")),
                firsts,
            )

    async def _update_profiles(self, session: AsyncSession, items: Run) -> None:
        await self._upsert_customers(session, [(act.UpsertCustomer(a.external_userid), s) for a, s in items])
        table = Customer.__table__
        now = self._clock.timestamp()
        await session.execute(
            update(table)
            .where(table.c.external_userid == bindparam("b_id"))
            .values(
                name=bindparam("b_name"),
                avatar=bindparam("b_avatar"),
                gender=bindparam("b_gender"),
                unionid=bindparam("b_unionid"),
                customer_type=bindparam("b_type"),
                updated_at=now,
            ),
            [
                {
                    "b_id": a.external_userid,
                    "b_name": a.name,
                    "b_avatar": a.avatar,
                    "b_gender": a.gender,
                    "b_unionid": a.unionid,
                    "b_type": a.customer_type,
                }
                for a, _ in items
            ],
        )

    async def _upsert_follows(self, session: AsyncSession, items: Run) -> None:
        now = self._clock.timestamp()
        # Insert-if-absent then update: safe when the inbox and the outbox touch one pair at once.
        rows = [
            {
                "external_userid": a.external_userid,
                "userid": a.userid,
                "status": a.status,
                "state": a.state,
                "remark": a.remark,
                "add_way": a.add_way,
                "added_at": a.added_at or now,
                "updated_at": a.added_at or now,
            }
            for a, _ in items
        ]
        await _insert_many(session, Follow, rows)
        table = Follow.__table__
        c = table.c
        at = bindparam("b_at")
        # SET expressions read the row as it was, so `ended_at IS NOT NULL` still sees the old end:
        # a pair re-added after a deletion is live again with a new added_at (history stays on the
        # timeline); empty fields in the event keep what the row had.
        await session.execute(
            update(table)
            .where(c.external_userid == bindparam("b_id"), c.userid == bindparam("b_userid"))
            .values(
                added_at=case((c.ended_at.is_not(None), at), else_=c.added_at),
                ended_at=None,
                ended_reason="",
                status=bindparam("b_status"),
                state=case((bindparam("b_state") != "", bindparam("b_state")), else_=c.state),
                remark=case((bindparam("b_remark") != "", bindparam("b_remark")), else_=c.remark),
                add_way=case((bindparam("b_add_way") != 0, bindparam("b_add_way")), else_=c.add_way),
                updated_at=at,
            ),
            [
                {
                    "b_id": row["external_userid"],
                    "b_userid": row["userid"],
                    "b_at": row["added_at"],
                    "b_status": row["status"],
                    "b_state": row["state"],
                    "b_remark": row["remark"],
                    "b_add_way": row["add_way"],
                }
                for row in rows
            ],
        )
        customers = Customer.__table__
        await session.execute(
            update(customers).where(customers.c.external_userid == bindparam("b_id")).values(status="active"),
            [{"b_id": a.external_userid} for a, _ in items],
        )

    async def _end_follows(self, session: AsyncSession, items: Run) -> None:
        for action, _ in items:
            await self._end_follow(session, action)

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

    async def _record_timeline(self, session: AsyncSession, items: Run) -> None:
        now = self._clock.timestamp()
        await _insert_many(
            session,
            TimelineEntry,
            [
                {
                    "source_key": a.source_key[:255],
                    "external_userid": a.external_userid,
                    "kind": a.kind,
                    "summary": a.summary[:512],
                    "data": a.data,
                    "occurred_at": a.occurred_at,
                    "recorded_at": now,
                }
                for a, _ in items
            ],
        )

    async def _update_kf_sessions(self, session: AsyncSession, items: Run) -> None:
        for action, _ in items:
            await self._update_kf_session(session, action)

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

    async def _record_handoffs(self, session: AsyncSession, items: Run) -> None:
        await _insert_many(
            session,
            HandoffRequest,
            [
                {
                    "source_key": a.source_key[:255],
                    "open_kfid": a.open_kfid,
                    "external_userid": a.external_userid,
                    "reason": a.reason,
                    "outside_hours": a.outside_hours,
                    "status": "open",
                    "requested_at": a.at,
                }
                for a, _ in items
            ],
        )

    async def _suggest(self, session: AsyncSession, items: Run) -> None:
        await _insert_many(
            session,
            Suggestion,
            [
                {
                    "source_key": a.source_key[:255],
                    "external_userid": a.external_userid,
                    "userid": a.userid,
                    "query": a.query,
                    "faq_id": a.faq_id,
                    "score": a.score,
                    "band": a.band,
                    "reply": a.reply,
                    "status": "new",
                    "created_at": a.at,
                }
                for a, _ in items
            ],
        )

    async def _schedule(self, session: AsyncSession, items: Run) -> None:
        now = self._clock.timestamp()
        await _insert_many(
            session,
            TimerRow,
            [
                {
                    "key": a.key,
                    "kind": a.kind,
                    "payload": a.payload,
                    "status": "pending",
                    "attempts": 0,
                    "due_at": a.due_at,
                    "created_at": now,
                }
                for a, _ in items
            ],
        )

    async def _cancel_timers(self, session: AsyncSession, items: Run) -> None:
        table = TimerRow.__table__
        await session.execute(
            update(table)
            .where(table.c.key == bindparam("b_key"), table.c.status == "pending")
            .values(status="cancelled"),
            [{"b_key": a.key} for a, _ in items],
        )

    async def _tag_customers(self, session: AsyncSession, items: Run) -> None:
        rows = [
            {
                "external_userid": a.external_userid,
                "tag_name": a.tag,
                "group_name": a.group,
                "source": a.rule[:128],
                "source_key": a.source_key[:255],
                "added_at": a.at,
            }
            for a, _ in items
        ]
        await _insert_many(session, CustomerTag, rows)
        # A tag removed earlier and said again is live again, and WeCom must hear of it again.
        table = CustomerTag.__table__
        await session.execute(
            update(table)
            .where(
                table.c.external_userid == bindparam("b_id"),
                table.c.tag_name == bindparam("b_tag"),
                table.c.removed_at.is_not(None),
            )
            .values(
                removed_at=None,
                synced_at=None,
                source=bindparam("b_source"),
                source_key=bindparam("b_source_key"),
                added_at=bindparam("b_at"),
            ),
            [
                {
                    "b_id": r["external_userid"],
                    "b_tag": r["tag_name"],
                    "b_source": r["source"],
                    "b_source_key": r["source_key"],
                    "b_at": r["added_at"],
                }
                for r in rows
            ],
        )

    async def _set_attributes(self, session: AsyncSession, items: Run) -> None:
        rows = [
            {
                "external_userid": a.external_userid,
                "key": a.key,
                "value": a.value[:255],
                "source_rule": a.rule[:128],
                "source_key": a.source_key[:255],
                "source_text": a.source_text[:255],
                "recorded_at": a.at,
            }
            for a, _ in items
        ]
        await _insert_many(session, CustomerAttribute, rows)
        # Latest message wins; a replayed older message must not overwrite what a newer one said.
        table = CustomerAttribute.__table__
        await session.execute(
            update(table)
            .where(
                table.c.external_userid == bindparam("b_id"),
                table.c.key == bindparam("b_key"),
                table.c.recorded_at <= bindparam("b_at"),
            )
            .values(
                value=bindparam("b_value"),
                source_rule=bindparam("b_rule"),
                source_key=bindparam("b_source_key"),
                source_text=bindparam("b_text"),
                recorded_at=bindparam("b_at"),
            ),
            [
                {
                    "b_id": r["external_userid"],
                    "b_key": r["key"],
                    "b_at": r["recorded_at"],
                    "b_value": r["value"],
                    "b_rule": r["source_rule"],
                    "b_source_key": r["source_key"],
                    "b_text": r["source_text"],
                }
                for r in rows
            ],
        )

    async def _add_lead_scores(self, session: AsyncSession, items: Run) -> None:
        for action, _ in items:
            await self._add_lead_score(session, action)

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

    async def _mark_tags_synced(self, session: AsyncSession, items: Run) -> None:
        for action, _ in items:
            await session.execute(
                update(CustomerTag)
                .where(
                    CustomerTag.external_userid == action.external_userid,
                    CustomerTag.tag_name.in_(action.tags),
                    CustomerTag.removed_at.is_(None),
                )
                .values(synced_at=action.at)
            )

    async def _record_welcome_assignments(self, session: AsyncSession, items: Run) -> None:
        # The first assignment sticks: a re-add keeps the script and variant it got.
        await _insert_many(
            session,
            WelcomeAssignment,
            [
                {
                    "external_userid": a.external_userid,
                    "userid": a.userid,
                    "script_id": a.script_id,
                    "variant": a.variant,
                    "welcome_code": a.welcome_code[:255],
                    "assigned_at": a.at,
                }
                for a, _ in items
            ],
        )

    async def _store_corp_tags_run(self, session: AsyncSession, items: Run) -> None:
        for action, _ in items:
            await self._store_corp_tags(session, action)

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

    # ---------------------------------------------------------------------- lifecycle and SOP

    async def _set_stages(self, session: AsyncSession, items: Run) -> None:
        table = Customer.__table__
        await session.execute(
            update(table)
            .where(table.c.external_userid == bindparam("b_id"))
            .values(stage=bindparam("b_stage"), stage_since=bindparam("b_at")),
            [{"b_id": a.external_userid, "b_stage": a.stage, "b_at": a.at} for a, _ in items],
        )
        await self._record_timeline(
            session,
            [
                (
                    act.RecordTimeline(
                        a.external_userid,
                        "stage",
                        f"阶段 → {a.stage}：{a.detail}",
                        a.at,
                        f"stage:{a.source_key}:{a.stage}",
                        {"stage": a.stage, "reason": a.reason},
                    ),
                    source,
                )
                for a, source in items
            ],
        )

    async def _note_messages(self, session: AsyncSession, items: Run) -> None:
        table = Customer.__table__
        c = table.c
        await session.execute(
            update(table)
            .where(
                c.external_userid == bindparam("b_id"),
                (c.last_message_at.is_(None)) | (c.last_message_at < bindparam("b_at")),
            )
            .values(last_message_at=bindparam("b_at")),
            [{"b_id": a.external_userid, "b_at": a.at} for a, _ in items],
        )

    async def _set_unsubscribed(self, session: AsyncSession, items: Run) -> None:
        table = Customer.__table__
        await session.execute(
            update(table)
            .where(table.c.external_userid == bindparam("b_id"))
            .values(unsubscribed_at=bindparam("b_at")),
            [{"b_id": a.external_userid, "b_at": a.at if a.unsubscribed else None} for a, _ in items],
        )
        await self._record_timeline(
            session,
            [
                (
                    act.RecordTimeline(
                        a.external_userid,
                        "unsubscribe" if a.unsubscribed else "resubscribe",
                        "客户退订了营销推送" if a.unsubscribed else "客户恢复了营销推送",
                        a.at,
                        f"optout:{a.source_key}",
                    ),
                    source,
                )
                for a, source in items
            ],
        )

    async def _enroll(self, session: AsyncSession, items: Run) -> None:
        # One run per customer and playbook at a time; a new run after an old one ended gets the
        # next iteration (its sends have their own idempotency keys).
        customers = sorted({a.external_userid for a, _ in items})
        playbooks = sorted({a.playbook_id for a, _ in items})
        table = Enrollment.__table__
        rows = await session.execute(
            select(table.c.external_userid, table.c.playbook_id, table.c.iteration, table.c.state).where(
                table.c.external_userid.in_(customers), table.c.playbook_id.in_(playbooks)
            )
        )
        last: dict[tuple[str, str], int] = {}
        live: set[tuple[str, str]] = set()
        for customer, playbook, iteration, state in rows:
            key = (customer, playbook)
            last[key] = max(last.get(key, 0), iteration)
            if state in ENROLLMENT_LIVE:
                live.add(key)
        new = []
        for a, _ in items:
            key = (a.external_userid, a.playbook_id)
            if key in live or (a.once and key in last):
                continue
            live.add(key)
            last[key] = last.get(key, 0) + 1
            new.append(
                {
                    "external_userid": a.external_userid,
                    "playbook_id": a.playbook_id,
                    "iteration": last[key],
                    "enrolled_stage": a.stage,
                    "enrolled_at": a.at,
                    "step_id": a.step_id,
                    "state": "due",
                    "due_at": a.due_at,
                    "step_reached_at": a.at,
                    "reaction": "",
                    "reason": a.reason[:255],
                    "updated_at": a.at,
                }
            )
        await _insert_many(session, Enrollment, new)

    async def _record_reactions(self, session: AsyncSession, items: Run) -> None:
        table = Enrollment.__table__
        c = table.c
        for action, _ in items:
            # A waiting run wakes at once and branches; the first reaction counts.
            query = update(table).where(
                c.external_userid == action.external_userid, c.state == "waiting", c.reaction == ""
            )
            if action.enrollment_id is not None:
                query = query.where(c.id == action.enrollment_id)
            await session.execute(query.values(reaction=action.kind, due_at=action.at, updated_at=action.at))

    async def _record_orders(self, session: AsyncSession, items: Run) -> None:
        now = self._clock.timestamp()
        await _insert_many(
            session,
            Order,
            [
                {
                    "order_id": a.order_id,
                    "external_userid": a.external_userid,
                    "amount_cents": a.amount_cents,
                    "paid_at": a.paid_at,
                    "received_at": now,
                    "data": a.data,
                }
                for a, _ in items
            ],
        )

    async def _set_group_members(self, session: AsyncSession, items: Run) -> None:
        table = GroupMember.__table__
        c = table.c
        for action, _ in items:
            members = sorted(set(action.members))
            await _insert_many(
                session,
                GroupMember,
                [{"chat_id": action.chat_id, "external_userid": m, "joined_at": action.at} for m in members],
            )
            if members:
                # Back in the group after leaving: a member again, joined now.
                await session.execute(
                    update(table)
                    .where(
                        c.chat_id == action.chat_id, c.external_userid.in_(members), c.left_at.is_not(None)
                    )
                    .values(left_at=None, joined_at=action.at)
                )
            await session.execute(
                update(table)
                .where(c.chat_id == action.chat_id, c.external_userid.not_in(members), c.left_at.is_(None))
                .values(left_at=action.at)
            )

    async def _record_mass_tasks(self, session: AsyncSession, items: Run) -> None:
        await _insert_many(
            session,
            MassTask,
            [
                {
                    "idem_key": a.idem_key[:255],
                    "msgid": a.msgid,
                    "enrollment_id": a.enrollment_id,
                    "external_userid": a.external_userid,
                    "userid": a.userid,
                    "step_id": a.step_id,
                    "status": a.status,
                    "reminders": a.reminders or 0,
                    "created_at": a.at,
                }
                for a, _ in items
            ],
        )
        for action, _ in items:
            values: dict[str, Any] = {"status": action.status, "checked_at": action.at}
            if action.msgid:
                values["msgid"] = action.msgid
            if action.reminders is not None:
                values["reminders"] = action.reminders
            if action.sent_at is not None:
                values["sent_at"] = action.sent_at
            await session.execute(
                update(MassTask).where(MassTask.idem_key == action.idem_key[:255]).values(**values)
            )

    _APPLIERS: ClassVar[dict[type, Callable[[Effects, AsyncSession, Run], Awaitable[None]]]] = {
        act.UpsertCustomer: _upsert_customers,
        act.UpdateCustomerProfile: _update_profiles,
        act.UpsertFollow: _upsert_follows,
        act.EndFollow: _end_follows,
        act.RecordTimeline: _record_timeline,
        act.TagCustomer: _tag_customers,
        act.SetAttribute: _set_attributes,
        act.AddLeadScore: _add_lead_scores,
        act.MarkTagsSynced: _mark_tags_synced,
        act.StoreCorpTags: _store_corp_tags_run,
        act.UpdateKfSession: _update_kf_sessions,
        act.RecordHandoff: _record_handoffs,
        act.SuggestToGuide: _suggest,
        act.RecordWelcomeAssignment: _record_welcome_assignments,
        act.Schedule: _schedule,
        act.CancelTimer: _cancel_timers,
        act.SetStage: _set_stages,
        act.NoteCustomerMessage: _note_messages,
        act.SetUnsubscribed: _set_unsubscribed,
        act.Enroll: _enroll,
        act.RecordReaction: _record_reactions,
        act.RecordOrder: _record_orders,
        act.SetGroupMembers: _set_group_members,
        act.RecordMassTask: _record_mass_tasks,
        act.WeComAction: _enqueue,
    }


Run = list[tuple[Any, str]]

ENROLLMENT_LIVE = ("due", "waiting")
"""States of a run that is still going."""

# Phases run in this order; kinds that share a phase keep the order the handlers gave them.
# Customers exist before what hangs off them, and state is written before the sends and timers
# that read it.
_PHASES: tuple[tuple[type, ...], ...] = (
    (act.UpsertCustomer,),
    (act.UpdateCustomerProfile,),
    (act.UpsertFollow, act.EndFollow),
    (act.RecordTimeline,),
    (act.TagCustomer, act.MarkTagsSynced),
    (act.SetAttribute,),
    (act.AddLeadScore,),
    (act.StoreCorpTags,),
    (act.UpdateKfSession,),
    (act.RecordHandoff,),
    (act.SuggestToGuide,),
    (act.RecordWelcomeAssignment,),
    (act.RecordOrder, act.SetGroupMembers, act.NoteCustomerMessage),
    (act.SetStage,),
    (act.SetUnsubscribed,),
    (act.Enroll,),
    (act.RecordReaction,),
    (act.RecordMassTask,),
    (act.Schedule, act.CancelTimer),
    (act.WeComAction,),
)
_PHASE_INDEX = {kind: i for i, kinds in enumerate(_PHASES) for kind in kinds}


def _kind_of(action: act.Action) -> type:
    return act.WeComAction if isinstance(action, act.WeComAction) else type(action)


def _phase_of(action: act.Action) -> int:
    try:
        return _PHASE_INDEX[_kind_of(action)]
    except KeyError:
        raise TypeError(f"no effect for {type(action).__name__}") from None


def _runs(items: list[tuple[act.Action, str]]) -> Iterator[tuple[type, Run]]:
    """Consecutive items of one kind, in order."""
    for kind, group in itertools.groupby(items, key=lambda item: _kind_of(item[0])):
        yield kind, list(group)


async def _insert_many(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for every row, in one statement."""
    await insert_rows(session, model.__table__, rows, ignore_conflicts=True)
