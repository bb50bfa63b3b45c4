"""SOP scheduler benchmark: one tick that claims and runs every due step, on PostgreSQL and SQLite.

Seeds N customers (one active follow each; guides rotate among 1,000 so that the due customers
spread evenly, D / 1,000 = 50 each, and no guide's daily task budget of 200 is reached), one
enrollment each in the `bench` playbook below, of which D are due now (spread evenly through the
table, due up to 50 minutes ago: within max_delay) and the rest due over the next 30 days, and
one past send per customer in sop_log (8 days ago: counted for the month, not the week or day;
`--no-history` leaves sop_log empty, which PostgreSQL then scans instead of using its index).
Then, in fresh processes, each worker runs `sop.workers` loops (config.yaml: 3; one on SQLite, as
`siyu serve` does) that call `SopRunner.run_due(now)` until it returns 0 (one tick):
every due run is claimed (`FOR UPDATE SKIP LOCKED` on PostgreSQL), decided (exit conditions,
`kf` skipped for want of a kf session, `mass_task` allowed by the manners) and committed with
its outbox row, sop_log line, timeline entry and next step, `sop.batch_size` runs per
transaction (config.yaml: 1000).

PostgreSQL (COPY into a template database, seeded once; each run gets a fresh copy of it):
  * N = 1,000,000, D = 50,000: one worker, then two workers (two processes started together);
  * N = 100,000, D = 50,000: one worker, to show that the worker's memory does not grow with N.
SQLite: N = 100,000, D = 50,000, one worker (embedded SQLite serves one process; one loop, its one writer).

Per worker: steps (runs handled), wall seconds, steps/s, CPU seconds, RSS before the tick
(imports, engine, settings), RSS after, and the process's peak RSS (getrusage ru_maxrss); each
worker is its own process, so the peak is the tick's and not the seeding's. Proof of no double
claims, counted in the database afterwards: outbox rows and distinct idempotency keys, sop_log
`sent` lines and the most any one run was sent, the sum of the workers' claims, and the runs
still due. For a local PostgreSQL, the server's CPU seconds during the tick too, and so how many
of the machine's cores the tick kept busy: two workers share them with each other and the server.
Goal: >= 5,000 steps/s per worker.

    .venv/bin/python bench/bench_sop.py                    # PostgreSQL (SIYU_TEST_DATABASE_URL) + SQLite
    .venv/bin/python bench/bench_sop.py --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/bench_sop.py --no-postgres      # SQLite only
    .venv/bin/python bench/bench_sop.py --profile /tmp/sop-prof   # also: one worker under py-spy
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONFIG = REPO / "config.yaml"
TEMPLATE_DB = "siyu_bench_sop_tpl"
RUN_DB = "siyu_bench_sop"
GUIDES = 1000
CHUNK = 50_000
GOAL = 5000.0
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # a Monday morning, outside quiet hours
ENROLLED = NOW - dt.timedelta(days=1, hours=1)

PLAYBOOK = """\
id: bench
name: 基准培育
trigger: {stage_entered: 加微}
max_delay: 6h
exit:
  stage_entered: [流失]
  tags_any: [已购]
  unsubscribed: true
when: 'not has_tag("员工")'
steps:
  - id: d1
    day: 1
    at: "09:00"
    content:
      text: "{customer_name}早上好～我是{store}的{guide_name}。方便告诉我宝宝现在几个月了吗？"
    route: [kf, mass_task]
  - id: d3
    day: 3
    at: "10:00"
    content:
      text: "{customer_name}，给您存一份新手爸妈常用的喂养小抄，收藏起来慢慢看～"
    route: [kf, mass_task]
"""


# ----------------------------------------------------------------------------------------------
# Seed rows (columns in table order, Python-side defaults filled in)
# ----------------------------------------------------------------------------------------------


def columns(model: Any) -> list[str]:
    """The model's columns except an autoincrement primary key, in table order."""
    return [c.name for c in model.__table__.columns if not (c.primary_key and c.autoincrement is not False)]


def record(model: Any, cols: Sequence[str], values: dict[str, Any]) -> tuple[Any, ...]:
    """One row as a tuple in `cols` order; missing values take the column's scalar default or NULL."""
    table = model.__table__
    out = []
    for name in cols:
        if name in values:
            out.append(values[name])
            continue
        default = table.c[name].default
        out.append(default.arg if default is not None and default.is_scalar else None)
    return tuple(out)


def customer_id(n: int) -> str:
    """The external_userid of customer `n`."""
    return f"wmBench{n:08d}"


def is_due(n: int, total: int, due: int) -> bool:
    """Whether customer `n`'s run is due now: every (total // due)-th, spread through the table."""
    return n % (total // due) == 0 and n // (total // due) < due


def seed_rows(kind: str, total: int, due: int) -> Iterator[tuple[Any, ...]]:
    """Rows of `kind` (customers, follows, enrollments, sop_log) for customers 0..total-1."""
    from bot.store.models import Customer, Enrollment, Follow, SopLog

    at = ENROLLED.timestamp()
    now = NOW.timestamp()
    model = {"customers": Customer, "follows": Follow, "enrollments": Enrollment, "sop_log": SopLog}[kind]
    cols = columns(model)
    for n in range(total):
        c = customer_id(n)
        if kind == "customers":
            values: dict[str, Any] = {
                "external_userid": c,
                "name": f"客户{n}",
                "customer_type": 1,
                "first_seen_at": at,
                "updated_at": at,
                "stage": "加微",
                "stage_since": at,
                "lead_score": 0,
            }
        elif kind == "sop_log":
            # History: last week's welcome step, sent by mass task (this month, not this week or day).
            values = {
                "enrollment_id": n + 1,
                "external_userid": c,
                "playbook_id": "bench",
                "step_id": "d0",
                "outcome": "sent",
                "route": "mass_task",
                "reason": "",
                "detail": "",
                "marketing": True,
                "userid": f"guide{(n // (total // due)) % GUIDES:04d}",
                "at": now - 8 * 86400,
            }
        elif kind == "follows":
            values = {
                "external_userid": c,
                "userid": f"guide{(n // (total // due)) % GUIDES:04d}",
                "added_at": at,
                "updated_at": at,
            }
        else:
            due_at = now - (n % 3000) if is_due(n, total, due) else now + 3600 + (n * 7919) % (29 * 86400)
            values = {
                "external_userid": c,
                "playbook_id": "bench",
                "iteration": 1,
                "enrolled_stage": "加微",
                "enrolled_at": at,
                "step_id": "d1",
                "state": "due",
                "due_at": float(due_at),
                "step_reached_at": at,
                "reaction": "",
                "reason": "",
                "updated_at": at,
            }
        yield record(model, cols, values)


def chunks(rows: Iterable[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    """`rows` in lists of `size` (the seeding never holds a whole table in memory)."""
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def table_columns(history: bool) -> dict[str, list[str]]:
    """Seeded tables and their columns (sop_log: one past send per customer, when `history`)."""
    from bot.store.models import Customer, Enrollment, Follow, SopLog

    tables = {"customers": columns(Customer), "follows": columns(Follow), "enrollments": columns(Enrollment)}
    if history:
        tables["sop_log"] = columns(SopLog)
    return tables


# ----------------------------------------------------------------------------------------------
# PostgreSQL: a seeded template, copied for each run
# ----------------------------------------------------------------------------------------------


def _url(base: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(base).set(database=database).render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    """An asyncpg DSN from a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(base: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(_url(base, "postgres")))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _checkpoint(base: str) -> None:
    """CHECKPOINT, when the bench's role may (superuser or pg_checkpoint); else carry on."""
    import asyncpg

    try:
        await _admin(base, "CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        print("  (no CHECKPOINT: the role may not; the tick may pay for the copy's writes)", flush=True)


async def _seed_postgres(url: str, total: int, due: int, history: bool) -> float:
    import asyncpg

    from bot.store import db

    engine = db.create_engine(url)
    try:
        await db.upgrade(engine)
    finally:
        await engine.dispose()
    started = time.perf_counter()
    conn = await asyncpg.connect(_dsn(url))
    try:
        for table, cols in table_columns(history).items():
            for batch in chunks(seed_rows(table, total, due)):
                await conn.copy_records_to_table(table, records=batch, columns=cols)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


@contextlib.contextmanager
def postgres_template(base: str, total: int, due: int, history: bool) -> Iterator[float]:
    """Seed the template database once; yield the seconds the seeding took; drop it afterwards."""
    drop = f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)'
    asyncio.run(_admin(base, drop, f'CREATE DATABASE "{TEMPLATE_DB}"'))
    try:
        yield asyncio.run(_seed_postgres(_url(base, TEMPLATE_DB), total, due, history))
    finally:
        asyncio.run(_admin(base, drop))


@contextlib.contextmanager
def postgres_copy(base: str) -> Iterator[str]:
    """A fresh copy of the seeded template (same rows, same statistics); dropped afterwards."""
    drop = f'DROP DATABASE IF EXISTS "{RUN_DB}" WITH (FORCE)'
    # FILE_COPY (PostgreSQL 15+) copies the files instead of writing the whole template into the
    # WAL, and the checkpoint after it flushes what the copy left: otherwise the tick measured next
    # pays for a gigabyte of someone else's writes.
    asyncio.run(_admin(base, drop))
    copy = f'CREATE DATABASE "{RUN_DB}" TEMPLATE "{TEMPLATE_DB}"'
    try:
        asyncio.run(_admin(base, copy + " STRATEGY = FILE_COPY"))
    except Exception:  # an older server has one strategy, and no STRATEGY option
        asyncio.run(_admin(base, copy))
    asyncio.run(_checkpoint(base))
    try:
        yield _url(base, RUN_DB)
    finally:
        asyncio.run(_admin(base, drop))


# ----------------------------------------------------------------------------------------------
# SQLite
# ----------------------------------------------------------------------------------------------


def seed_sqlite(path: Path, total: int, due: int, history: bool) -> float:
    """Migrate and fill the SQLite file at `path`; the seconds the seeding took."""
    from bot.store import db

    async def migrate() -> None:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await db.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        for table, cols in table_columns(history).items():
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for batch in chunks(seed_rows(table, total, due)):
                conn.executemany(sql, batch)
            conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------------------------
# One worker: a subprocess that runs one tick and prints its figures as JSON
# ----------------------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def tick(url: str, batch_size: int, start_at: float) -> dict[str, Any]:
    """run_due(now) until nothing is claimable; the worker's figures."""
    from sqlalchemy import text

    from bot.clock import FrozenClock
    from bot.config import load_settings
    from bot.effects import Effects
    from bot.playbooks import load_playbooks_from_texts
    from bot.sop_runner import SopRunner, Texts
    from bot.store import db

    settings = load_settings(CONFIG, environ={}).with_overrides(
        **{"database.url": url, "sop.batch_size": batch_size}
    )
    clock = FrozenClock(NOW)
    playbooks = load_playbooks_from_texts({"bench.yaml": PLAYBOOK})
    guides = {f"guide{g:04d}": (f"导购{g}", f"{g}号店") for g in range(GUIDES)}
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    runner = SopRunner(
        sessions,
        Effects(clock),
        clock,
        settings,
        playbooks=lambda: playbooks,
        texts=lambda: Texts("小禾母婴", guides),
    )
    async with engine.connect() as conn:  # open the pool's connection before the clock starts
        await conn.execute(text("SELECT 1"))
    # As `siyu serve` does once started (bot/app.py): the long-lived heap leaves the collector's
    # view, so a full collection does not walk every imported module's objects again.
    gc.collect()
    gc.freeze()
    rss_before = rss_mb()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    started, cpu = time.perf_counter(), time.process_time()
    began = time.time()
    now = NOW.timestamp()

    async def loop() -> tuple[int, int]:
        handled = batches = 0
        while n := await runner.run_due(now):
            handled += n
            batches += 1
        return handled, batches

    # The worker's loops, as `siyu serve` runs them (sop.workers; one on SQLite, its one writer).
    loops = settings.sop.workers if engine.dialect.name != "sqlite" else 1
    counts = await asyncio.gather(*(loop() for _ in range(loops)))
    handled = sum(h for h, _ in counts)
    batches = sum(b for _, b in counts)
    seconds = time.perf_counter() - started
    result = {
        "handled": handled,
        "batches": batches,
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "began": began,
        "ended": time.time(),
        "rss_before": rss_before,
        "rss_after": rss_mb(),
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    await engine.dispose()
    return result


def worker_command(url: str, batch_size: int, start_at: float, profile: Path | None) -> list[str]:
    """The subprocess running one worker (under py-spy when profiling)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", url, "--batch-size", str(batch_size)]
    cmd += ["--start-at", repr(start_at)]
    if profile is None:
        return cmd
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [
        spy,
        "record",
        "--format",
        "raw",
        "--rate",
        "250",
        "--nonblocking",
        "-o",
        str(profile),
        "--",
        *cmd,
    ]


def run_workers(url: str, workers: int, batch_size: int, profile: Path | None = None) -> list[dict[str, Any]]:
    """Start `workers` processes together on `url`; each one's figures."""
    start_at = time.time() + 3.0  # after every worker imported and connected
    procs = [
        subprocess.Popen(
            worker_command(url, batch_size, start_at, profile if i == 0 else None),
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for i in range(workers)
    ]
    out = []
    for proc in procs:
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"worker exited {proc.returncode}")
        # The figures are the last JSON line (py-spy prints its own lines after the worker's).
        out.append(json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1]))
    return out


# ----------------------------------------------------------------------------------------------
# Checks: no double claims
# ----------------------------------------------------------------------------------------------


async def audit(url: str) -> dict[str, int]:
    """Outbox rows, distinct keys, sent log lines, the most sends of one run, runs still due."""
    from sqlalchemy import text

    from bot.store import db

    engine = db.create_engine(url)
    tick = f"at >= {NOW.timestamp()}"  # this tick's lines, not the seeded history
    queries = {
        "outbox": "SELECT count(*) FROM outbox WHERE kind = 'create_mass_task'",
        "keys": "SELECT count(DISTINCT idem_key) FROM outbox WHERE kind = 'create_mass_task'",
        "sent": f"SELECT count(*) FROM sop_log WHERE outcome = 'sent' AND {tick}",
        "max_per_run": "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM sop_log"
        f" WHERE outcome = 'sent' AND {tick} GROUP BY enrollment_id) AS per_run",
        "other_outcomes": f"SELECT count(*) FROM sop_log WHERE outcome <> 'sent' AND {tick}",
        "left_due": "SELECT count(*) FROM enrollments WHERE state IN ('due', 'waiting')"
        f" AND due_at <= {NOW.timestamp()}",
        "moved_on": "SELECT count(*) FROM enrollments WHERE step_id = 'd3'",
    }
    try:
        async with engine.connect() as conn:
            return {name: int((await conn.execute(text(sql))).scalar_one()) for name, sql in queries.items()}
    finally:
        await engine.dispose()


# ----------------------------------------------------------------------------------------------
# Scenarios and the report
# ----------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One measured tick: its data, its workers' figures and the audit."""

    backend: str
    total: int
    due: int
    workers: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, int] = field(default_factory=dict)
    seed_seconds: float = 0.0
    server_cpu: float | None = None  # PostgreSQL's CPU seconds during the tick (local server only)

    @property
    def cores_busy(self) -> float | None:
        """Workers' and server's CPU seconds over the wall time: how many cores the tick kept busy."""
        if self.server_cpu is None:
            return None
        return (sum(w["cpu"] for w in self.workers) + self.server_cpu) / self.wall

    @property
    def wall(self) -> float:
        """From the first worker's start to the last one's end."""
        return max(w["ended"] for w in self.workers) - min(w["began"] for w in self.workers)

    @property
    def handled(self) -> int:
        """Runs claimed by all workers together."""
        return sum(w["handled"] for w in self.workers)

    @property
    def exactly_once(self) -> bool:
        """Every due run claimed and sent once: no double claims, none missing."""
        a = self.audit
        return (
            self.handled == self.due
            and a["outbox"] == a["keys"] == a["sent"] == self.due
            and a["max_per_run"] == 1
            and a["left_due"] == 0
            and a["moved_on"] == self.due
        )


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by local PostgreSQL processes, exited backends included (Linux /proc).

    None when no `postgres` process is visible (a server on another machine): then the cores the
    tick kept busy cannot be told.
    """
    ticks = 0
    seen = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        seen = True
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, and those of reaped children
    return ticks / os.sysconf("SC_CLK_TCK") if seen else None


def measure(backend: str, url: str, total: int, due: int, workers: int, args: argparse.Namespace) -> Scenario:
    """One tick with `workers` workers on the database at `url`."""
    scenario = Scenario(backend, total, due)
    before = server_cpu_seconds() if backend == "postgres" else None
    scenario.workers = run_workers(url, workers, args.batch_size)
    after = server_cpu_seconds() if before is not None else None
    scenario.server_cpu = after - before if before is not None and after is not None else None
    scenario.audit = asyncio.run(audit(url))
    _progress(scenario)
    return scenario


def _progress(s: Scenario) -> None:
    rates = ", ".join(f"{w['handled'] / w['seconds']:,.0f}" for w in s.workers)
    print(
        f"  {s.backend} N={s.total:,} due={s.due:,} workers={len(s.workers)}: steps/s per worker {rates}; "
        f"audit {s.audit}",
        flush=True,
    )


def print_table(scenarios: Sequence[Scenario], batch_size: int) -> None:
    """The per-worker figures, the per-tick totals and the audit, and the goal verdict."""
    head = (
        f"{'backend':<9} {'enrollments':>11} {'due':>7} {'workers':>7} {'worker':>6} {'steps':>7} "
        f"{'secs':>7} {'steps/s':>8} {'CPU s':>6} {'RSS before':>10} {'RSS after':>9} {'peak RSS':>8}"
    )
    print()
    print(f"One tick: run_due(now) until 0, sop.batch_size {batch_size}; RSS in MiB")
    print(head)
    print("-" * len(head))
    for s in scenarios:
        for i, w in enumerate(s.workers, 1):
            print(
                f"{s.backend:<9} {s.total:>11,} {s.due:>7,} {len(s.workers):>7} {i:>6} {w['handled']:>7,} "
                f"{w['seconds']:>7.2f} {w['handled'] / w['seconds']:>8,.0f} {w['cpu']:>6.1f} "
                f"{w['rss_before']:>10.1f} {w['rss_after']:>9.1f} {w['peak']:>8.1f}"
            )
    print()
    head2 = (
        f"{'backend':<9} {'enrollments':>11} {'workers':>7} {'total steps/s':>13} {'claimed':>8} "
        f"{'outbox':>7} {'keys':>7} {'sent log':>8} {'max/run':>7} {'not sent':>8} {'left due':>8} "
        f"{'once?':>5}"
    )
    print(head2)
    print("-" * len(head2))
    for s in scenarios:
        a = s.audit
        print(
            f"{s.backend:<9} {s.total:>11,} {len(s.workers):>7} {s.handled / s.wall:>13,.0f} {s.handled:>8,} "
            f"{a['outbox']:>7,} {a['keys']:>7,} {a['sent']:>8,} {a['max_per_run']:>7} "
            f"{a['other_outcomes']:>8,} {a['left_due']:>8,} "
            f"{'yes' if s.exactly_once else 'NO':>5}"
        )
    print()
    print("steps = runs a worker claimed and committed; total steps/s = all steps / wall time from the")
    print("first worker's start to the last one's end. outbox = create_mass_task rows, keys = distinct")
    print("idempotency keys, sent log = sop_log 'sent' lines, max/run = most 'sent' lines of one run,")
    print("not sent = other sop_log lines (deferred, skipped: none expected here), left due = runs")
    print("still due at `now` after the tick. Peak RSS = the worker process's ru_maxrss.")
    print()
    for s in scenarios:
        busy = s.cores_busy
        if busy is not None:
            server = s.server_cpu or 0.0
            workers = sum(w["cpu"] for w in s.workers)
            print(
                f"{s.backend} {s.total:,} x{len(s.workers)}: workers {workers:.1f} CPU s + PostgreSQL"
                f" {server:.1f} CPU s in {s.wall:.1f} s = {busy:.2f} of {os.cpu_count()} cores busy"
            )
    # The goal is the issue's: PostgreSQL, a worker's claim rate; SQLite and two workers are shown beside it.
    single = [min_rate(s) for s in scenarios if s.backend == "postgres" and len(s.workers) == 1]
    worst = min(single, default=0.0)
    verdict = "MET" if single and worst >= GOAL else "NOT MET"
    print(
        f"goal >= {GOAL:,.0f} steps/s per worker on PostgreSQL (one worker): {verdict}"
        f" (slowest {worst:,.0f} steps/s)"
    )
    for s in scenarios:
        if len(s.workers) > 1:
            rates = " / ".join(f"{w['handled'] / w['seconds']:,.0f}" for w in s.workers)
            print(
                f"  with {len(s.workers)} workers ({s.backend}, {s.total:,}): {rates} steps/s each,"
                f" {s.handled / s.wall:,.0f} together; per worker {'at' if min_rate(s) >= GOAL else 'below'}"
                f" the goal (they share the cores counted above with each other and the server)"
            )
    print(f"exactly once in every tick: {'yes' if all(s.exactly_once for s in scenarios) else 'NO'}")


def min_rate(s: Scenario) -> float:
    """The slowest worker's steps/s in `s`."""
    return min(w["handled"] / w["seconds"] for w in s.workers)


def profile_worker(url: str, batch_size: int, directory: Path) -> None:
    """Record one worker under py-spy and print the functions its samples were in (self and total)."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / "sop_worker.txt"
    run_workers(url, 1, batch_size, profile=raw)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    print(f"\npy-spy: {total} samples of one worker ({raw}); top frames by own time:")
    for frame, n in own.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("top frames by total time (repo code):")
    repo = [(f, n) for f, n in inclusive.most_common() if "(bot/" in f or "(handlers/" in f]
    for frame, n in repo[:20]:
        print(f"  {100 * n / total:5.1f}%  {frame}")


def _short(frame: str) -> str:
    """`func (path:line)` with the path cut to its last two parts and the line dropped."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


def _command(argv: Sequence[str]) -> str:
    return shlex.join([".venv/bin/python", "bench/bench_sop.py", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags; run the PostgreSQL and SQLite ticks (or one worker with --worker); print figures."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres-url", default=os.environ.get("SIYU_TEST_DATABASE_URL"))
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL even if a URL is set")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument("--enrollments", type=int, default=1_000_000, help="PostgreSQL enrollments")
    parser.add_argument("--due", type=int, default=50_000, help="PostgreSQL runs due now")
    parser.add_argument("--small", type=int, default=100_000, help="PostgreSQL enrollments of the RSS check")
    parser.add_argument("--sqlite-enrollments", type=int, default=100_000)
    parser.add_argument("--sqlite-due", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="sop.batch_size (config.yaml: 1000)")
    parser.add_argument(
        "--no-history", action="store_true", help="an empty sop_log (default: one past send per customer)"
    )
    parser.add_argument("--profile", type=Path, help="also profile one PostgreSQL worker with py-spy here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(tick(args.worker, args.batch_size, args.start_at))))
        return 0

    print(f"command: {_command(argv)}", flush=True)
    scenarios: list[Scenario] = []
    if args.postgres_url and not args.no_postgres:
        for total in (args.enrollments, args.small):
            print(f"PostgreSQL: seeding {total:,} customers, follows and enrollments ...", flush=True)
            with postgres_template(args.postgres_url, total, args.due, not args.no_history) as seconds:
                print(f"  seeded in {seconds:.1f} s (COPY + VACUUM ANALYZE)", flush=True)
                for workers in (1, 2) if total == args.enrollments else (1,):
                    with postgres_copy(args.postgres_url) as url:
                        scenarios.append(measure("postgres", url, total, args.due, workers, args))
                if args.profile is not None and total == args.enrollments:
                    with postgres_copy(args.postgres_url) as url:
                        profile_worker(url, args.batch_size, args.profile)
    elif not args.no_postgres:
        print("PostgreSQL skipped: pass --postgres-url or set SIYU_TEST_DATABASE_URL")
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="siyu-bench-sop-") as tmp:
            path = Path(tmp) / "bench.db"
            print(f"SQLite: seeding {args.sqlite_enrollments:,} enrollments ...", flush=True)
            seconds = seed_sqlite(path, args.sqlite_enrollments, args.sqlite_due, not args.no_history)
            print(f"  seeded in {seconds:.1f} s", flush=True)
            url = f"sqlite+aiosqlite:///{path}"
            scenarios.append(measure("sqlite", url, args.sqlite_enrollments, args.sqlite_due, 1, args))
    print_table(scenarios, args.batch_size)
    print(f"\ncommand: {_command(argv)}")
    return 0 if all(s.exactly_once for s in scenarios) else 1


if __name__ == "__main__":
    sys.exit(main())
