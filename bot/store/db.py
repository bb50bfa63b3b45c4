"""Engine and sessions from a URL (SQLite in WAL mode by default, PostgreSQL by URL), and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot import errors

MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(url: str) -> bool:
    """True for a SQLite URL."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and its directory created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url, echo=echo, pool_size=pool_size, pool_pre_ping=True, json_serializer=_json_dumps
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, json_serializer=_json_dumps)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        # WAL lets readers run beside the writer; NORMAL sync is durable across process crashes
        # (an OS crash may lose the last commits, the price of millisecond acks on a laptop).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _json_dumps(value: Any) -> str:
    """JSON columns keep Chinese text as it is: a third of the size of \\u escapes, to send and store."""
    return json.dumps(value, ensure_ascii=False)


class Sessions:
    """Session factory; `begin()` opens a write transaction, `write_lock()` guards other writes.

    SQLite has one writer. When two connections of this process write at once, the loser waits
    in SQLite's busy handler, which sleeps in steps of 1 to 100 ms: under load that capped the
    inbox worker at ~25 events/s. On SQLite, write transactions therefore queue on one asyncio
    lock first, so they never meet inside SQLite; on PostgreSQL the lock is not used.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._factory = async_sessionmaker(engine, expire_on_commit=False)
        self.kw = self._factory.kw
        self._serialize = engine.dialect.name == "sqlite"
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    def __call__(self, **kw: Any) -> AsyncSession:
        """A session for reads (or a caller-managed transaction)."""
        return self._factory(**kw)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on exit (rolled back on error)."""
        async with self.write_lock(), self._factory.begin() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write_lock(self) -> AsyncIterator[None]:
        """Hold the process's SQLite write turn (re-entrant within one task; free on PostgreSQL)."""
        task = asyncio.current_task()
        if not self._serialize or self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


def sessionmaker(engine: AsyncEngine) -> Sessions:
    """The session factory for `engine`; objects stay usable after commit."""
    return Sessions(engine)


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at (None when empty)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""

    def run(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def prepare(engine: AsyncEngine, *, auto_upgrade: bool) -> None:
    """Make sure the schema is current: upgrade when allowed (embedded SQLite), else refuse."""
    current = await current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        await upgrade(engine)
        return
    raise errors.SchemaBehind(
        f"database schema is at {current or 'nothing'}, this code needs {head}: run `siyu db upgrade`"
    )
