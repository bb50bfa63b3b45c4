"""Storage backends for contract tests: SQLite in a temp dir, and PostgreSQL under CI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import db


async def fresh_postgres(url: str) -> AsyncEngine:
    """An engine on an empty public schema (the test database is ours alone)."""
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    return engine


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request, tmp_path) -> AsyncIterator[AsyncEngine]:
    """A migrated database on each backend."""
    if request.param == "sqlite":
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    else:
        engine = await fresh_postgres(request.getfixturevalue("postgres_url"))
    await db.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine):
    """Session factory on the backend under test."""
    return db.sessionmaker(engine)
