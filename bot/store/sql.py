"""Dialect helpers shared by the queues: insert-if-absent and claiming with SKIP LOCKED."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignore(session: AsyncSession, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (any unique key) for the session's dialect."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


# Below this many rows an executemany is as quick, and keeps the statement cache small.
_UNNEST_MIN_ROWS = 8


async def insert_rows(
    session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert `rows`; on PostgreSQL one INSERT ... SELECT FROM unnest per set of keys.

    asyncpg runs an executemany statement by statement, and SQLAlchemy builds each row's
    parameters on the way: for a batch of a thousand rows one statement with one array per column
    costs a fraction of both. Small batches, rows that leave out a column with a computed Python
    default, and SQLite take an executemany.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        # An executemany takes its columns from the first row: rows with other keys go separately.
        groups.setdefault(tuple(row), []).append(row)
    for group in groups.values():
        if _is_postgres(session) and len(group) >= _UNNEST_MIN_ROWS:
            statement = _unnest_insert(session, table, group, ignore_conflicts)
            if statement is not None:
                await session.execute(*statement)
                continue
        stmt = insert_ignore(session, table) if ignore_conflicts else table.insert()
        await session.execute(stmt, group)


def _unnest_insert(
    session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], ignore_conflicts: bool
) -> tuple[Any, dict[str, Any]] | None:
    """The unnest INSERT of rows with the same keys, or None when they need the general path."""
    keys = rows[0].keys()
    columns: list[tuple[Any, list[Any]]] = []
    for column in table.columns:
        if column.name in keys:
            columns.append((column, [row[column.name] for row in rows]))
        elif column.default is not None:
            if not column.default.is_scalar:
                return None
            columns.append((column, [column.default.arg]))
        # else: NULL or the server's default, as an executemany would leave it
    bound = _Unnest(session, columns)
    if not bound.arrays:
        return None  # identical rows: nothing to unnest
    quote = session.bind.dialect.identifier_preparer.quote  # type: ignore[union-attr]
    names = ", ".join(quote(column.name) for column, _ in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {', '.join(bound.selected)} FROM {bound.source}"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    )
    return text(sql), bound.params


async def update_rows(
    session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], *, key: str = "id"
) -> None:
    """Set each row's values (dicts with the same keys, `key` among them) on the row with its `key`.

    On PostgreSQL one UPDATE ... FROM unnest(...) for the batch (asyncpg runs an executemany row
    by row); elsewhere one executemany.
    """
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    if _is_postgres(session):
        bound = _Unnest(
            session,
            [(table.c[key], [row[key] for row in rows])]
            + [(table.c[c], [row[c] for row in rows]) for c in columns],
            always_array=key,
        )
        quote = session.bind.dialect.identifier_preparer.quote  # type: ignore[union-attr]
        assignments = ", ".join(
            f"{quote(c)} = {expr}" for c, expr in zip(columns, bound.selected[1:], strict=True)
        )
        await session.execute(
            text(
                f"UPDATE {quote(table.name)} AS t SET {assignments} FROM {bound.source}"
                f" WHERE t.{quote(key)} = {bound.selected[0]}"
            ),
            bound.params,
        )
        return
    stmt = (
        update(table)
        .where(table.c[key] == bindparam(f"b_{key}"))
        .values({c: bindparam(f"b_{c}") for c in columns})
    )
    await session.execute(stmt, [{f"b_{c}": v for c, v in row.items()} for row in rows])


class _Unnest:
    """Columns' values bound for an unnest: one array per varying column, a scalar per constant one.

    asyncpg checks each array element on the way out, and a batch's rows share most of their
    columns (time, kind, status): binding those once saves most of that work.
    """

    def __init__(
        self, session: AsyncSession, columns: list[tuple[Any, list[Any]]], always_array: str = ""
    ) -> None:
        dialect = session.bind.dialect  # type: ignore[union-attr]
        self.selected: list[str] = []  # per column: the SQL expression of its value
        self.arrays: list[str] = []
        self.params: dict[str, Any] = {}
        for i, (column, values) in enumerate(columns):
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            sql_type = column.type.compile(dialect=dialect)
            if column.name != always_array and values.count(values[0]) == len(values):
                self.params[f"p{i}"] = process(values[0]) if process is not None else values[0]
                self.selected.append(f"CAST(:p{i} AS {sql_type})")
                continue
            self.params[f"p{i}"] = [process(v) for v in values] if process is not None else values
            self.arrays.append(f"CAST(:p{i} AS {sql_type}[])")
            self.selected.append(f"u.c{len(self.arrays)}")

    @property
    def source(self) -> str:
        """The FROM item: unnest of the arrays, as u(c1, c2, ...)."""
        names = ", ".join(f"c{n}" for n in range(1, len(self.arrays) + 1))
        return f"unnest({', '.join(self.arrays)}) AS u({names})"


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


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
    """Set each row's own values (id -> column values): one `update_rows` per distinct set of columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in changes:
        groups.setdefault(tuple(sorted(values)), []).append({"id": row_id, **values})
    for rows in groups.values():
        await update_rows(session, table, rows)
