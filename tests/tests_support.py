"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def fresh_postgres(url: str):  # type: ignore[no-untyped-def]
    """An engine on an empty, migrated public schema (the test database is ours alone)."""
    from sqlalchemy import text

    from bot.store import db

    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    return engine
