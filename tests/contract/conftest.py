"""Storage backends for contract tests: SQLite in a temp dir, and PostgreSQL under CI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests_support import fresh_postgres

from bot.store import db


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
