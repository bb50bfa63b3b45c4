"""The acknowledgement path's one write: inbox rows, insert-if-absent, on the driver connection.

Every callback waits for this write before WeCom gets its 200, so it skips SQLAlchemy's cursor
machinery: through aiosqlite each cursor step is a hop to the driver's thread, and a transaction
cost ~1 ms of CPU that way against ~0.2 ms as one multi-row statement plus a commit. The SQL is
one `INSERT ... ON CONFLICT DO NOTHING RETURNING dedup_key` per batch on both backends; the
contract tests run it on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.models import InboxRow
from bot.store.notify import notify_driver

COLUMNS = (
    "dedup_key",
    "app",
    "kind",
    "route_key",
    "partition_key",
    "plaintext",
    "status",
    "attempts",
    "done_routers",
    "received_at",
    "available_at",
)
_JSON_COLUMNS = frozenset({"done_routers"})
assert set(COLUMNS) <= set(InboxRow.__table__.c.keys())


@lru_cache(maxsize=64)
def _sql(dialect: str, rows: int) -> str:
    width = len(COLUMNS)
    if dialect == "postgresql":
        groups = (
            "("
            + ",".join(
                f"${r * width + i + 1}" + ("::json" if col in _JSON_COLUMNS else "")
                for i, col in enumerate(COLUMNS)
            )
            + ")"
            for r in range(rows)
        )
    else:
        groups = ("(" + ",".join("?" * width) + ")" for _ in range(rows))
    return (
        f"INSERT INTO inbox ({', '.join(COLUMNS)}) VALUES {', '.join(groups)} "
        "ON CONFLICT DO NOTHING RETURNING dedup_key"
    )


def _flat(rows: list[dict[str, Any]]) -> list[Any]:
    return [json.dumps(row[col]) if col in _JSON_COLUMNS else row[col] for row in rows for col in COLUMNS]


async def insert_inbox_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows whose dedup_key is new, in one statement and transaction; the keys inserted."""
    if not rows:
        return set()
    dialect = conn.dialect.name
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    sql, params = _sql(dialect, len(rows)), _flat(rows)
    if dialect == "postgresql":
        # One statement outside an explicit transaction is its own transaction in asyncpg.
        records = await driver.fetch(sql, *params)
        if records:
            await notify_driver(driver, "inbox")  # wake idle replicas too
        return {r[0] for r in records}
    if driver.isolation_level is not None:
        # Autocommit: the one statement is its own transaction, so the write costs a single hop
        # to aiosqlite's thread instead of two (statement, then COMMIT). The connection is
        # dedicated to this writer and is invalidated, not pooled, when released.
        driver.isolation_level = None
    records = await driver.execute_fetchall(sql, params)
    return {r[0] for r in records}
