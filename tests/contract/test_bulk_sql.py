"""Batch inserts and updates (bot/store/sql.py) write the same rows on SQLite and PostgreSQL.

On PostgreSQL a batch of at least eight rows goes as one statement over unnest(...) arrays, with a
column whose value every row shares bound once; smaller batches, rows with differing keys and
SQLite take an executemany. Each test checks the rows as read back.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Text, func, select

from bot.store import sql
from bot.store.db import Sessions
from bot.store.models import Enrollment, OutboxRow, SopLog

pytestmark = pytest.mark.usefixtures("engine")


def outbox_row(n: int, **changes: Any) -> dict[str, Any]:
    """An outbox row whose key and payload vary with `n`; time and kind are shared."""
    return {
        "idem_key": f"k{n}",
        "kind": "send_kf_text",
        "payload": {"text": f"第{n}条", "n": n, "tags": ["宝妈"]},
        "partition_key": f"cust:wm{n}",
        "created_at": 100.0,
        "available_at": 100.0,
        "deadline_at": None,
        **changes,
    }


async def outbox(sessions: Sessions) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                OutboxRow.idem_key,
                OutboxRow.kind,
                OutboxRow.payload,
                OutboxRow.status,
                OutboxRow.attempts,
                OutboxRow.partition_key,
                OutboxRow.deadline_at,
            ).order_by(OutboxRow.id)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("count", [3, 20], ids=["small", "batch"])
async def test_insert_rows_fills_defaults_and_keeps_json_and_nulls(sessions: Sessions, count: int) -> None:
    rows = [outbox_row(n, deadline_at=None if n % 2 else 200.0 + n) for n in range(count)]
    async with sessions.begin() as session:
        await sql.insert_rows(session, OutboxRow.__table__, rows)
    assert await outbox(sessions) == [
        (
            f"k{n}",
            "send_kf_text",
            {"text": f"第{n}条", "n": n, "tags": ["宝妈"]},
            "pending",  # the column's default
            0,
            f"cust:wm{n}",
            None if n % 2 else 200.0 + n,
        )
        for n in range(count)
    ]


async def test_insert_rows_ignoring_conflicts_keeps_the_first_row_of_a_key(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await sql.insert_rows(session, OutboxRow.__table__, [outbox_row(n) for n in range(10)])
    # A key twice in one batch, too: the first row of it wins, as with a row-by-row insert.
    again = [outbox_row(n, kind="replayed") for n in range(5, 15)] + [outbox_row(12, kind="twice")]
    async with sessions.begin() as session:
        await sql.insert_rows(session, OutboxRow.__table__, again, ignore_conflicts=True)
    kinds = {key: kind for key, kind, *_ in await outbox(sessions)}
    assert len(kinds) == 15
    assert {kinds[f"k{n}"] for n in range(10)} == {"send_kf_text"}
    assert {kinds[f"k{n}"] for n in range(10, 15)} == {"replayed"}


async def test_insert_rows_without_ignoring_conflicts_raises_and_writes_nothing(sessions: Sessions) -> None:
    rows = [outbox_row(n) for n in range(10)] + [outbox_row(3)]
    with pytest.raises(Exception, match=r"(?i)unique"):
        async with sessions.begin() as session:
            await sql.insert_rows(session, OutboxRow.__table__, rows)
    assert await outbox(sessions) == []


async def test_insert_rows_with_differing_keys_and_identical_rows(sessions: Sessions) -> None:
    base = {"enrollment_id": 1, "external_userid": "wm1", "playbook_id": "p", "step_id": "d1", "at": 5.0}
    mixed = [{**base, "outcome": "sent"} for _ in range(6)] + [
        {**base, "outcome": "skipped", "reason": "late"} for _ in range(6)
    ]
    async with sessions.begin() as session:
        await sql.insert_rows(session, SopLog.__table__, mixed)  # keys differ: the general path
        await sql.insert_rows(session, SopLog.__table__, [{**base, "outcome": "done"}] * 9)  # all equal
    async with sessions() as session:
        rows = (await session.execute(select(SopLog.outcome, SopLog.reason, SopLog.marketing))).all()
    assert sorted(tuple(r) for r in rows) == sorted(
        [("sent", "", True)] * 6 + [("skipped", "late", True)] * 6 + [("done", "", True)] * 9
    )


@pytest.mark.parametrize("count", [3, 20], ids=["small", "batch"])
async def test_update_rows_sets_each_rows_own_values(sessions: Sessions, count: int) -> None:
    start = [
        {
            "external_userid": f"wm{n}",
            "playbook_id": "p",
            "iteration": 1,
            "enrolled_at": 1.0,
            "step_id": "d1",
            "state": "due",
            "due_at": 10.0,
            "step_reached_at": 1.0,
            "reaction": "reply",
            "updated_at": 1.0,
        }
        for n in range(count + 2)
    ]
    async with sessions.begin() as session:
        await sql.insert_rows(session, Enrollment.__table__, start)
    async with sessions() as session:
        ids = list(await session.scalars(select(Enrollment.id).order_by(Enrollment.id)))
    changes = [
        {"id": row_id, "state": "done" if n % 3 == 0 else "due", "due_at": 100.0 + n, "reaction": ""}
        for n, row_id in enumerate(ids[:count])
    ]
    async with sessions.begin() as session:
        await sql.update_rows(session, Enrollment.__table__, changes)
    async with sessions() as session:
        got = (
            await session.execute(
                select(Enrollment.state, Enrollment.due_at, Enrollment.reaction, Enrollment.step_id).order_by(
                    Enrollment.id
                )
            )
        ).all()
    assert [tuple(r) for r in got] == [
        ("done" if n % 3 == 0 else "due", 100.0 + n, "", "d1") for n in range(count)
    ] + [("due", 10.0, "reply", "d1")] * 2  # rows not in the batch are untouched


async def test_json_columns_store_chinese_text_unescaped(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await sql.insert_rows(session, OutboxRow.__table__, [outbox_row(1)])
    async with sessions() as session:
        raw = await session.scalar(select(func.cast(OutboxRow.payload, Text)))
    assert "第1条" in raw and "宝妈" in raw  # not \\u7b2c: a third of the bytes to send and store
