"""Dialect helpers shared by the queues: insert-if-absent and claiming with SKIP LOCKED."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignore(session: AsyncSession, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (any unique key) for the session's dialect."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def for_claim(session: AsyncSession, query: Select) -> Select:
    """Lock claimed rows on PostgreSQL so replicas skip each other's; SQLite is one writer anyway."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def claim(
    session: AsyncSession, model: Any, candidates: Select, still_claimable: ColumnElement[bool], **values: Any
) -> list[Any]:
    """Claim candidate rows: a guarded UPDATE ... RETURNING takes only rows still claimable.

    The guard makes claims exclusive on every backend (SQLite has no row locks, and its driver
    starts the transaction at the first write, so a plain select-then-update could let two
    claimers take one row); on PostgreSQL the candidates are also locked with SKIP LOCKED so
    replicas do not even contend for the same rows.
    """
    ids = list((await session.scalars(for_claim(session, candidates))).all())
    if not ids:
        return []
    stmt = (
        update(model)
        .where(model.id.in_(ids), still_claimable)
        .values(**values)
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    rows = list((await session.scalars(stmt)).all())
    return sorted(rows, key=lambda row: row.id)


async def update_by_id(
    session: AsyncSession, table: Any, changes: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """Set each row's own values (id -> column values): one executemany per distinct set of columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in changes:
        groups.setdefault(tuple(sorted(values)), []).append(
            {"b_id": row_id, **{f"b_{k}": v for k, v in values.items()}}
        )
    for columns, params in groups.items():
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in columns})
        )
        await session.execute(stmt, params)
