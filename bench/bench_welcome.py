"""Welcome benchmark: add events at a fixed rate through `siyu serve` into the emulator, within 20 s.

The emulator (create_emulator, SystemClock) runs in this process, pinned to one core together with
the load generator; `siyu serve` (the real CLI: callbacks, inbox/outbox/timer workers, frozen GC)
runs as a subprocess pinned to another core, on a fresh temporary SQLite database (and on a fresh,
migrated PostgreSQL database when a URL is given).

Each event is `EmulatorState.simulate_add_contact`: a distinct customer, guides rotating among
xiaolin / zhangmei / wangqiang, `State` rotating among the channel states of content_library/
channels.yaml, and a fresh WelcomeCode valid 20 s; the emulator POSTs the real encrypted
add_external_contact callback to the service. Measured per event:

  t0 = the emulator's clock when it POSTs the callback (after encrypting it; `state.callbacks[].at`)
  t1 = the emulator's clock when it accepted send_welcome_msg with that code (errcode 0)

Missed = a code that never got an accepted welcome (41050 expired, 41051, 45009, never sent).
The service's own timestamps (inbox received/processed, outbox created) split t1 - t0 into stages.

    python bench/bench_welcome.py                        # 200/s for 10 s on SQLite
    python bench/bench_welcome.py --duration 30          # the issue's figure: 200/s for 30 s
    python bench/bench_welcome.py --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_callbacks import _wait_healthy, cpu_seconds, free_port, postgres_database

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config.yaml"
GUIDES = ("xiaolin", "zhangmei", "wangqiang")
WELCOME_PATH = "/cgi-bin/externalcontact/send_welcome_msg"
CODE_RE = re.compile(
    r"<WelcomeCode><!\[CDATA\[([^\]]+)\]\]></WelcomeCode>|<WelcomeCode>([^<]+)</WelcomeCode>"
)


def channel_states() -> list[str]:
    """Every channel's `state` in content_library/channels.yaml, in file order."""
    data = yaml.safe_load((REPO / "content_library" / "channels.yaml").read_text(encoding="utf-8"))
    return [str(c["state"]) for c in data["channels"]]


def choose_cpus() -> tuple[int | None, int | None]:
    """(service CPU, emulator + load-generator CPU): two different cores when we may use two."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[0]) if len(cpus) < 2 else (cpus[0], cpus[1])


# ----------------------------------------------------------------------------------------------
# The service: `siyu serve` in a pinned subprocess
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def siyu_serve(db_url: str, emulator_url: str, cpu: int | None, log: Path) -> Iterator[tuple[str, int]]:
    """`python -m bot serve` on a free port against the emulator; yield (base URL, pid); always stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(
        SIYU_CONFIG=str(CONFIG),
        SIYU_DATABASE__URL=db_url,
        SIYU_SERVICE__HOST="127.0.0.1",
        SIYU_SERVICE__PORT=str(port),
        SIYU_SERVICE__PUBLIC_URL=base,
        SIYU_WECOM__BASE_URL=emulator_url,
    )
    out = open(log, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
    )
    try:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            # Before it imports anything: every thread it starts later inherits the mask.
            os.sched_setaffinity(proc.pid, {cpu})
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


# ----------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One measured run against one database."""

    name: str
    events: int = 0
    elapsed: float = 0.0  # first to last callback POST (emulator clock)
    latencies: list[float] = field(default_factory=list)  # t1 - t0 per welcomed event, seconds
    missed: int = 0
    miss_reasons: dict[str, int] = field(default_factory=dict)
    ack_failed: int = 0  # the first POST was not a 200 (timeout, error, status)
    retried_calls: int = 0  # send_welcome_msg answers other than 0 (41096, 45009 ...)
    stages: dict[str, list[float]] = field(default_factory=dict)
    service_cpu: float = 0.0
    local_cpu: float = 0.0
    send_lag_max: float = 0.0  # how late the generator was against its schedule, seconds

    @property
    def rate(self) -> float:
        """Add events actually delivered per second."""
        return (self.events - 1) / self.elapsed if self.elapsed > 0 and self.events > 1 else 0.0


def pct(values: Sequence[float], q: float) -> float:
    """Percentile of `values` in milliseconds (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_once(
    name: str, db_url: str, args: argparse.Namespace, cpus: tuple[int | None, int | None], log: Path
) -> Result:
    """Emulator here, `siyu serve` there; drive the adds, wait for the welcomes, collect the figures."""
    from aiohttp import web

    from bot.clock import SystemClock
    from bot.config import load_settings
    from bot.wecom.emulator import EMULATOR_STATE, create_emulator

    settings = load_settings(CONFIG, environ={})
    clock = SystemClock()
    emulator = create_emulator(settings, clock=clock)
    state = emulator[EMULATOR_STATE]
    runner = web.AppRunner(emulator, access_log=None)
    await runner.setup()
    emu_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", emu_port).start()
    result = Result(name)
    try:
        with siyu_serve(db_url, f"http://127.0.0.1:{emu_port}", cpus[0], log) as (base, pid):
            await _wait_until_healthy(base, pid)
            state.callback_base_url = base
            # One connection pool sized for the rate: WeCom's pushes do not queue behind each other.
            state.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(100, int(args.rate)))
            )
            state.owns_session = True
            await _drive(state, args, result, pid)
            await _collect_service_stages(db_url, state, result)
    finally:
        await runner.cleanup()
    return result


async def _wait_until_healthy(base: str, pid: int) -> None:
    class _Proc:  # _wait_healthy wants poll(); a pid is enough to tell whether the child lives
        returncode = None

        def poll(self) -> int | None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return 1
            return None

    await _wait_healthy(base, _Proc())  # type: ignore[arg-type]


async def _drive(state: Any, args: argparse.Namespace, result: Result, pid: int) -> None:
    """Adds at `args.rate` for `args.duration`; then wait until every code is welcomed or expired."""
    states = channel_states()
    total = int(args.rate * args.duration)
    tag = f"{int(time.time()) % 100000:05d}"
    adds: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    cpu0, local0 = cpu_seconds(pid), time.process_time()
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.send_lag_max = max(result.send_lag_max, -delay)
        tasks.append(
            asyncio.create_task(
                state.simulate_add_contact(
                    userid=GUIDES[i % len(GUIDES)],
                    state=states[i % len(states)],
                    external_userid=f"wmBENCH{tag}{i:015d}",
                    name=f"顾客{i}",
                )
            )
        )
    adds = list(await asyncio.gather(*tasks))
    codes = {a["welcome_code"]: a for a in adds}
    window = state.settings.emulator.welcome_code_ttl_seconds
    first_at = min(a["delivery"]["at"] for a in adds)
    last_at = max(a["delivery"]["at"] for a in adds)
    # Every code is either welcomed or expired `window` s after its callback; a little slack on top.
    while time.time() < last_at + window + 2:
        if len({m["welcome_code"] for m in state.world.welcome_messages} & codes.keys()) == len(codes):
            break
        await asyncio.sleep(0.2)
    wall = time.perf_counter() - start
    result.service_cpu = (cpu_seconds(pid) - cpu0) / wall
    result.local_cpu = (time.process_time() - local0) / wall
    result.events = len(adds)
    result.elapsed = last_at - first_at

    accepted = {m["welcome_code"]: m["at"] for m in state.world.welcome_messages}
    failures: dict[str, list[int]] = {}
    for entry in state.calls(WELCOME_PATH):
        code = (entry.get("body") or {}).get("welcome_code")
        if entry.get("errcode") not in (0, None) and code in codes:
            failures.setdefault(code, []).append(int(entry["errcode"]))
            result.retried_calls += 1
    for code, add in codes.items():
        attempts = add["delivery"]["attempts"]
        if not attempts or attempts[0] != 200:
            result.ack_failed += 1
        if code in accepted:
            result.latencies.append(accepted[code] - add["delivery"]["at"])
        else:
            result.missed += 1
            reason = str(failures[code][-1]) if code in failures else "never sent"
            result.miss_reasons[reason] = result.miss_reasons.get(reason, 0) + 1


async def _collect_service_stages(db_url: str, state: Any, result: Result) -> None:
    """Split t1 - t0 with the service's timestamps: POST->stored, stored->handled, handled->accepted."""
    from sqlalchemy import select

    from bot.store import db
    from bot.store.models import InboxRow, OutboxRow

    posted = {}
    for cb in state.callbacks:
        match = CODE_RE.search(cb["plaintext"])
        if match:
            posted[match.group(1) or match.group(2)] = cb["at"]
    accepted = {m["welcome_code"]: m["at"] for m in state.world.welcome_messages}
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            inbox = (
                await conn.execute(
                    select(InboxRow.plaintext, InboxRow.received_at, InboxRow.processed_at).where(
                        InboxRow.kind == "ContactAdded"
                    )
                )
            ).all()
            outbox = (
                await conn.execute(
                    select(OutboxRow.idem_key, OutboxRow.created_at).where(OutboxRow.kind == "send_welcome")
                )
            ).all()
    finally:
        await engine.dispose()
    created = {key.split(":", 1)[1]: at for key, at in outbox if key.startswith("welcome:")}
    stages: dict[str, list[float]] = {
        "POST -> stored": [],
        "stored -> outbox row": [],
        "outbox row -> accepted": [],
    }
    for plaintext, received_at, _processed_at in inbox:
        match = CODE_RE.search(plaintext)
        code = match and (match.group(1) or match.group(2))
        if not code or code not in posted:
            continue
        stages["POST -> stored"].append(received_at - posted[code])
        if code in created:
            stages["stored -> outbox row"].append(created[code] - received_at)
            if code in accepted:
                stages["outbox row -> accepted"].append(accepted[code] - created[code])
    result.stages = stages


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def print_table(results: Sequence[Result], args: argparse.Namespace) -> None:
    """Figures per database, then the stage split."""
    head = (
        f"{'service':<14} {'events':>6} {'adds/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'missed':>6} {'ack fail':>8} {'non-0':>5} {'srv CPU':>7} {'emu CPU':>7}"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.name:<14} {r.events:>6} {r.rate:>7.1f} {pct(r.latencies, 0.5):>8.1f}"
            f" {pct(r.latencies, 0.99):>8.1f} {pct(r.latencies, 1.0):>8.1f} {r.missed:>6}"
            f" {r.ack_failed:>8} {r.retried_calls:>5} {r.service_cpu:>7.0%} {r.local_cpu:>7.0%}"
        )
    for r in results:
        if r.miss_reasons:
            print(f"  [{r.name}] missed by reason: {r.miss_reasons}")
        if r.send_lag_max > 0.05:
            print(f"  [{r.name}] the generator fell up to {r.send_lag_max * 1000:.0f} ms behind its schedule")
    print()
    print(f"{'stage (service clock)':<36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>6}")
    for r in results:
        for stage, values in r.stages.items():
            label = f"{r.name}: {stage}"
            print(
                f"{label:<36} {pct(values, 0.5):>8.1f} {pct(values, 0.99):>8.1f}"
                f" {pct(values, 1.0):>8.1f} {len(values):>6}"
            )
    print()
    for r in results:
        p99 = pct(r.latencies, 0.99)
        ok = p99 <= 1000.0 and r.missed == 0
        print(
            f"{r.name}: p99 {p99:.0f} ms, {r.missed} missed windows at {r.rate:.0f} adds/s for "
            f"{args.duration:g} s (goal p99 <= 1000 ms, zero missed: {'met' if ok else 'NOT met'})"
        )
    print()
    print("latency = emulator POSTs the add callback -> emulator accepts send_welcome_msg (errcode 0),")
    print("both on the emulator's SystemClock. missed = no accepted welcome for the code (expired, final")
    print("errcode or never sent); ack fail = the first callback POST was not answered 200 within 5 s;")
    print("non-0 = send_welcome_msg answers other than 0 (retries included). srv CPU = share of the")
    print("service's core; emu CPU = share of the core the emulator and load generator share.")


def _command(args: argparse.Namespace) -> str:
    rel = os.path.relpath(sys.executable)
    words = [rel if not rel.startswith("..") else "python", *sys.argv]
    env = ""
    if args.postgres_url and "--postgres-url" not in sys.argv and not args.no_postgres:
        env = f"SIYU_TEST_DATABASE_URL={shlex.quote(args.postgres_url)} "
    return env + " ".join(shlex.quote(w) for w in words)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run on SQLite (and PostgreSQL), print the figures and the command."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="add events per second (default 200)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of adds (default 10; the issue's figure is 30)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SIYU_TEST_DATABASE_URL"),
        help="also run on PostgreSQL (a fresh database siyu_bench is created, migrated and dropped);"
        " default $SIYU_TEST_DATABASE_URL",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL even if a URL is set")
    parser.add_argument("--logs", type=Path, help="keep the service's output in this directory")
    args = parser.parse_args(argv)

    service_cpu, local_cpu = choose_cpus()
    if local_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {local_cpu})
    command = _command(args)
    print(f"command: {command}")
    print(
        f"siyu serve pinned to CPU {service_cpu}, emulator + load generator on CPU {local_cpu} "
        f"({os.cpu_count()} CPUs online); python {sys.version.split()[0]}; "
        f"{args.rate:g} adds/s for {args.duration:g} s"
    )
    cpus = (service_cpu, local_cpu)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="siyu-bench-welcome-") as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        sqlite_url = f"sqlite+aiosqlite:///{tmp}/siyu.db"
        results.append(asyncio.run(run_once("siyu sqlite", sqlite_url, args, cpus, logs / "sqlite.log")))
        if args.postgres_url and not args.no_postgres:
            with postgres_database(args.postgres_url) as pg_url:
                results.append(
                    asyncio.run(run_once("siyu postgres", pg_url, args, cpus, logs / "postgres.log"))
                )
        else:
            print("PostgreSQL skipped: pass --postgres-url or set SIYU_TEST_DATABASE_URL")
    print_table(results, args)
    print(f"\ncommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
