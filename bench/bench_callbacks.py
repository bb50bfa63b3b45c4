"""Callback ack benchmark: a bare aiohttp 200 next to `siyu serve`'s callback path, on one core.

Each server runs in its own subprocess pinned to one core; the load generator (aiohttp client)
runs in this process on another core, so the two never share an event loop or a CPU.

Measured per server:
  * closed loop: N connections send back to back -> acknowledged callbacks/s, p50/p99 ack latency;
  * open loop: a paced sender at a fixed rate (default 1,000/s) -> p50/p99 ack latency, measured
    from each request's scheduled send time so a stalled server cannot hide its queueing.

Siyu runs `create_app(settings, run_workers=False)`: the ack path only (signature, decrypt, parse,
durable inbox write, 200); the inbox workers that act on the rows afterwards are not running.
Every callback is a distinct, correctly signed and encrypted add_external_contact event.

    python bench/bench_callbacks.py                       # bare + siyu on SQLite
    python bench/bench_callbacks.py --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    SIYU_TEST_DATABASE_URL=... python bench/bench_callbacks.py --duplicates
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config.yaml"
BENCH_DB = "siyu_bench"
# Fixed so every run encrypts the same plaintexts; distinct ExternalUserIDs keep dedup keys apart.
BASE_CREATE_TIME = 1_795_000_000
TICKS = os.sysconf("SC_CLK_TCK")
# WeCom gives up on a callback after 5 s and retries it: an ack slower than that is a failure.
WECOM_TIMEOUT = 5.0


# ----------------------------------------------------------------------------------------------
# Servers (run in a child process: `bench_callbacks.py _serve KIND PORT CPU [DB_URL]`)
# ----------------------------------------------------------------------------------------------


def _pin(cpu: int | None) -> None:
    """Pin this process to one CPU so the figures are per core, not per machine."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def serve_bare(port: int) -> None:
    """A bare aiohttp app: read the POST body (as any handler must) and answer an empty 200."""
    from aiohttp import web

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/wecom/callback/contact", callback)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)


def serve_siyu(port: int, db_url: str) -> None:
    """`siyu serve` as bot/cli.py runs it, but without the inbox/outbox/timer workers."""
    from aiohttp import web

    from bot.app import create_app
    from bot.config import load_settings, secret_values
    from bot.logs import setup_logging

    settings = load_settings(CONFIG, environ={}).with_overrides(
        **{"database.url": db_url, "service.host": "127.0.0.1", "service.port": port}
    )
    setup_logging(settings.logging.level, settings.logging.format, secret_values(settings))
    web.run_app(
        # As `siyu serve` does: long-lived startup objects are moved out of the collector's way.
        create_app(settings, run_workers=False, freeze_gc=True),
        host="127.0.0.1",
        port=port,
        shutdown_timeout=settings.service.shutdown_timeout_seconds,
        access_log=None,
        print=lambda *_: None,
    )


# ----------------------------------------------------------------------------------------------
# Payloads
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """One ready-to-send POST: query string and XML envelope body."""

    query: str
    body: bytes


def build_callbacks(count: int, tag: str) -> list[Callback]:
    """`count` distinct signed and encrypted add_external_contact callbacks for the demo corp."""
    from bot.config import load_settings
    from bot.wecom.crypto import CallbackCrypto, envelope_xml
    from bot.wecom.emulator import payloads

    settings = load_settings(CONFIG, environ={})
    app = settings.app("contact")
    corp_id = settings.wecom.corp_id
    crypto = CallbackCrypto(
        app.callback_token.get_secret_value(), app.encoding_aes_key.get_secret_value(), corp_id
    )
    out: list[Callback] = []
    for i in range(count):
        xml = payloads.contact_event(
            corp_id,
            BASE_CREATE_TIME + i,
            "add_external_contact",
            UserID="xiaolin",
            ExternalUserID=f"wmBENCH{tag}{i:020d}",
            State="store_12",
            WelcomeCode=f"BENCHWELCOME{tag}{i}",
        )
        timestamp, nonce = str(BASE_CREATE_TIME + i), f"bench{tag}{i}"
        encrypt, sig = crypto.encrypt(xml, timestamp, nonce)
        body = envelope_xml(corp_id, str(app.agent_id), encrypt).encode()
        out.append(Callback(f"msg_signature={sig}&timestamp={timestamp}&nonce={nonce}", body))
    return out


class Feed:
    """Hands out callbacks in order; each one is sent once per server."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self._callbacks = callbacks
        self._next = 0

    def take(self) -> Callback | None:
        """The next unsent callback, or None when the pool is used up."""
        if self._next >= len(self._callbacks):
            return None
        self._next += 1
        return self._callbacks[self._next - 1]

    @property
    def sent(self) -> Sequence[Callback]:
        """Callbacks handed out so far."""
        return self._callbacks[: self._next]


# ----------------------------------------------------------------------------------------------
# Load generator
# ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One measured phase."""

    server: str
    mode: str
    acked: int = 0
    failed: int = 0  # not acked within WeCom's 5 s: timeout, connection error or non-200
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # fraction of one core the server used during the phase
    exhausted: bool = False

    @property
    def rate(self) -> float:
        """Acknowledged callbacks per second."""
        return self.acked / self.elapsed if self.elapsed else 0.0

    @property
    def per_core(self) -> float:
        """Rate scaled to a fully busy server core: its capacity when the client set the pace."""
        return self.rate / self.server_cpu if self.server_cpu > 0.05 else float("nan")

    def pct(self, q: float) -> float:
        """Latency percentile in milliseconds; a failed callback counts as slower than any ack."""
        ordered = sorted(self.latencies) + [float("inf")] * self.failed
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the ")" of comm: state is fields[0], so utime/stime (stat 14/15) are fields[11]/[12].
    return (int(fields[11]) + int(fields[12])) / TICKS


async def _post(session: aiohttp.ClientSession, url: str, cb: Callback) -> bool:
    """POST one callback; True when WeCom would count it as acknowledged (200)."""
    async with session.post(f"{url}?{cb.query}", data=cb.body) as resp:
        await resp.read()
        return resp.status == 200


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=WECOM_TIMEOUT),
        # Callbacks are XML; aiohttp would otherwise label the bytes octet-stream.
        headers={"Content-Type": "text/xml"},
        skip_auto_headers=("User-Agent",),
    )


async def closed_loop(
    url: str, feed: Feed, *, concurrency: int, duration: float, result: Result, pid: int
) -> Result:
    """`concurrency` connections each send the next callback as soon as the last one is acked."""
    session = _session(concurrency)
    deadline = 0.0

    async def worker() -> None:
        while time.perf_counter() < deadline:
            cb = feed.take()
            if cb is None:
                result.exhausted = True
                return
            start = time.perf_counter()
            try:
                ok = await _post(session, url, cb)
            except Exception:
                ok = False
            if ok:
                result.acked += 1
                result.latencies.append(time.perf_counter() - start)
            else:
                result.failed += 1

    async with session:
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        deadline = t0 + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - t0
        result.server_cpu = (cpu_seconds(pid) - cpu0) / result.elapsed
    return result


async def open_loop(
    url: str, feed: Feed, *, rate: float, duration: float, result: Result, pid: int
) -> Result:
    """Send at a fixed rate whatever the server does; latency counts from the scheduled send time."""
    # Enough connections that the client never queues behind a slow ack at this rate.
    session = _session(max(64, int(rate * 0.2)))
    total = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []

    async def one(cb: Callback, scheduled: float) -> None:
        try:
            ok = await _post(session, url, cb)
        except Exception:
            ok = False
        latency = time.perf_counter() - scheduled
        # Client-side queueing counts too: WeCom's 5 s run from when it meant to send.
        if ok and latency <= WECOM_TIMEOUT:
            result.acked += 1
            result.latencies.append(latency)
        else:
            result.failed += 1

    async with session:
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        for i in range(total):
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            cb = feed.take()
            if cb is None:
                result.exhausted = True
                break
            tasks.append(asyncio.create_task(one(cb, scheduled)))
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - t0
        result.server_cpu = (cpu_seconds(pid) - cpu0) / result.elapsed
    return result


async def replay(
    url: str, sent: Sequence[Callback], *, concurrency: int, duration: float, result: Result, pid: int
) -> Result:
    """Closed loop over callbacks the server already acked: WeCom's retries, each a duplicate."""
    items = list(sent)
    return await closed_loop(
        url,
        Feed(items * max(1, 200_000 // max(1, len(items)))),
        concurrency=concurrency,
        duration=duration,
        result=result,
        pid=pid,
    )


# ----------------------------------------------------------------------------------------------
# Orchestration
# ----------------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(
    kind: str, cpu: int | None, db_url: str = "", log: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Start a server subprocess pinned to `cpu`; yield (base URL, pid); always kill it."""
    port = free_port()
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_serve",
        kind,
        str(port),
        "" if cpu is None else str(cpu),
        db_url,
    ]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        asyncio.run(_wait_healthy(f"http://127.0.0.1:{port}", proc))
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes], wait_for: float = 60.0) -> None:
    deadline = time.monotonic() + wait_for
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server at {base} not healthy after {wait_for:.0f} s")


def run_server(
    name: str,
    kind: str,
    db_url: str,
    callbacks: Sequence[Callback],
    args: argparse.Namespace,
    cpus: tuple[int | None, int | None],
    log: Path | None,
) -> list[Result]:
    """Warm up, then closed loop, open loop and (optionally) duplicates against one server."""
    server_cpu, _ = cpus
    feed = Feed(callbacks)
    results: list[Result] = []
    with server_process(kind, server_cpu, db_url, log) as (base, pid):
        url = base + "/wecom/callback/contact"
        # Warm-up: imports, JIT-free but cache-cold paths, connection pools, SQLite page cache.
        asyncio.run(
            closed_loop(
                url,
                feed,
                concurrency=args.concurrency,
                duration=args.warmup,
                result=Result(name, "warmup"),
                pid=pid,
            )
        )
        results.append(
            asyncio.run(
                closed_loop(
                    url,
                    feed,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    result=Result(name, f"closed c={args.concurrency}"),
                    pid=pid,
                )
            )
        )
        results.append(
            asyncio.run(
                open_loop(
                    url,
                    feed,
                    rate=args.rate,
                    duration=args.duration,
                    result=Result(name, f"open {args.rate:g}/s"),
                    pid=pid,
                )
            )
        )
        if args.duplicates and kind == "siyu":
            results.append(
                asyncio.run(
                    replay(
                        url,
                        feed.sent,
                        concurrency=args.concurrency,
                        duration=min(args.duration, 3.0),
                        result=Result(name, f"dup c={args.concurrency}"),
                        pid=pid,
                    )
                )
            )
    if kind == "siyu":
        rows = asyncio.run(_count_inbox(db_url))
        distinct = sum(r.acked for r in results if not r.mode.startswith("dup"))
        # Warm-up acks are rows too; the check is that nothing acked is missing from the inbox.
        print(f"  [{name}] inbox rows after run: {rows} (acked distinct in measured phases: {distinct})")
    return results


async def _count_inbox(db_url: str) -> int:
    from sqlalchemy import func, select

    from bot.store import db
    from bot.store.models import InboxRow

    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(InboxRow))).scalar_one())
    finally:
        await engine.dispose()


@contextlib.contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A fresh `siyu_bench` database on the server of `url`, migrated to head; dropped afterwards."""
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(database="postgres")
    bench = make_url(url).set(database=BENCH_DB)
    asyncio.run(
        _admin(admin, f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)', f'CREATE DATABASE "{BENCH_DB}"')
    )
    try:
        bench_url = bench.render_as_string(hide_password=False)
        asyncio.run(_upgrade(bench_url))
        yield bench_url
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))


async def _admin(url: object, *statements: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _upgrade(url: str) -> None:
    # `siyu serve` refuses a behind-schema PostgreSQL, exactly as `siyu db upgrade` would fix it.
    from bot.store import db

    engine = db.create_engine(url)
    try:
        await db.upgrade(engine)
    finally:
        await engine.dispose()


def choose_cpus() -> tuple[int | None, int | None]:
    """(server CPU, load-generator CPU): two different cores when this process may use two."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return cpus[0], cpus[0]
    return cpus[0], cpus[1]


def _ms(value: float) -> str:
    return f">{WECOM_TIMEOUT * 1000:.0f}" if value == float("inf") else f"{value:.2f}"


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    """The figures, one row per phase, then the ratios against the bare handler."""
    head = (
        f"{'server':<14} {'mode':<13} {'acked/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'srv CPU':>8}"
        f" {'/s per core':>11} {'failed':>7}"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        note = "  (pool used up)" if r.exhausted else ""
        print(
            f"{r.server:<14} {r.mode:<13} {r.rate:>8.0f} {_ms(r.pct(0.50)):>8} {_ms(r.pct(0.99)):>8} "
            f"{r.server_cpu:>8.0%} {r.per_core:>11.0f} {r.failed:>7}{note}"
        )
    closed = {r.server: r for r in results if r.mode.startswith("closed")}
    opened = {r.server: r for r in results if r.mode.startswith("open")}
    bare = closed.get("bare aiohttp")
    print()
    for name, r in closed.items():
        if name == "bare aiohttp" or not bare or not bare.rate:
            continue
        o = opened.get(name)
        ratio, core_ratio = r.rate / bare.rate, r.per_core / bare.per_core
        p99 = o.pct(0.99) if o else float("nan")
        print(
            f"{name}: siyu/bare = {ratio:.0%} measured, {core_ratio:.0%} per busy core "
            f"(goal >= 40%: {'met' if min(ratio, core_ratio) >= 0.4 else 'NOT met'}); "
            f"p99 at {args.rate:g}/s = {_ms(p99)} ms (goal <= 20 ms: {'met' if p99 <= 20.0 else 'NOT met'})"
        )
    print()
    print("siyu = create_app(settings, run_workers=False): signature + decrypt + parse + durable inbox")
    print("write + 200 on one pinned core; the inbox/outbox/timer workers are off, so only the ack")
    print("path is measured. srv CPU = share of that core the server used; when it is well below 100%")
    print("the load generator set the pace, and '/s per core' (rate / srv CPU) estimates the capacity.")
    print(f"failed = not acked within WeCom's {WECOM_TIMEOUT:g} s (it would retry); slowest in p50/p99.")


def _command(args: argparse.Namespace) -> str:
    """This run's command line, with the PostgreSQL URL's source when it came from the environment."""
    python = (
        os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") else "python"
    )
    words = [python, *sys.argv]
    env = ""
    if args.postgres_url and "--postgres-url" not in sys.argv and not args.no_postgres:
        env = f"SIYU_TEST_DATABASE_URL={shlex.quote(args.postgres_url)} "
    return env + " ".join(shlex.quote(w) for w in words)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run every server in turn and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measured phase (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per server (default 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop connections (default 32)")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop callbacks/s (default 1000)")
    parser.add_argument(
        "--pool",
        type=int,
        default=45_000,
        help="distinct callbacks pre-built per server (default 45000); a closed loop stops early"
        " when they run out",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SIYU_TEST_DATABASE_URL"),
        help="PostgreSQL server to benchmark on (a fresh database siyu_bench is created and"
        " dropped); default $SIYU_TEST_DATABASE_URL",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL even if a URL is set")
    parser.add_argument(
        "--duplicates", action="store_true", help="also measure re-sent (duplicate) callbacks against siyu"
    )
    parser.add_argument("--logs", type=Path, help="keep each server's output in this directory")
    args = parser.parse_args(argv)

    server_cpu, client_cpu = choose_cpus()
    _pin(client_cpu)
    needed = int(args.rate * args.duration) + 1
    if args.pool < needed:
        parser.error(f"--pool must be at least rate*duration ({needed})")
    command = _command(args)
    print(f"command: {command}")
    print(
        f"server pinned to CPU {server_cpu}, load generator on CPU {client_cpu} "
        f"({os.cpu_count()} CPUs online); python {sys.version.split()[0]}"
    )
    t = time.perf_counter()
    # The same pool serves every server: each one has its own fresh database, so no duplicates.
    callbacks = build_callbacks(args.pool, "A")
    print(
        f"built {len(callbacks)} distinct signed+encrypted add_external_contact callbacks "
        f"in {time.perf_counter() - t:.1f} s"
    )
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)

    def log(name: str) -> Path | None:
        return args.logs / f"{name}.log" if args.logs else None

    results: list[Result] = []
    cpus = (server_cpu, client_cpu)
    results += run_server("bare aiohttp", "bare", "", callbacks, args, cpus, log("bare"))
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{tmp}/siyu.db"
        results += run_server("siyu sqlite", "siyu", sqlite_url, callbacks, args, cpus, log("sqlite"))
    if args.postgres_url and not args.no_postgres:
        with postgres_database(args.postgres_url) as pg_url:
            results += run_server("siyu postgres", "siyu", pg_url, callbacks, args, cpus, log("postgres"))
    else:
        print("PostgreSQL skipped: pass --postgres-url or set SIYU_TEST_DATABASE_URL")
    print_table(results, args)
    print(f"\ncommand: {command}")
    return 0


def _serve_main(argv: Sequence[str]) -> int:
    """Child-process entry: `_serve KIND PORT CPU [DB_URL]`."""
    kind, port, cpu = argv[0], int(argv[1]), argv[2]
    _pin(int(cpu) if cpu else None)
    if kind == "bare":
        serve_bare(port)
    else:
        serve_siyu(port, argv[3])
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        sys.exit(_serve_main(sys.argv[2:]))
    sys.exit(main())
