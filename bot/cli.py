"""`siyu` command line: serve, demo, emulator, routes, config, db, inbox and outbox tools."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot import __version__, errors
from bot.cli_channels import add_channels_commands
from bot.cli_content import add_content_commands
from bot.cli_customer import add_customer_commands
from bot.cli_faq import add_faq_eval_command, add_preview_command, cmd_preview
from bot.cli_sop import add_sop_commands
from bot.cli_tagging import add_tagging_eval_command, add_tagging_preview_option, cmd_tagging_preview
from bot.clock import SHANGHAI
from bot.config import Settings, load_settings, masked_dump, secret_values
from bot.logs import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `siyu` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except errors.ConfigError as exc:
        print(f"siyu: configuration error: {exc}", file=sys.stderr)
        return 2
    except errors.SiyuError as exc:
        print(f"siyu: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siyu", description="Siyu (私域): WeCom private-domain operations.")
    parser.add_argument("--version", action="version", version=f"siyu {__version__}")
    parser.add_argument("--config", help="settings file (default: $SIYU_CONFIG or ./config.yaml)")
    sub = parser.add_subparsers(metavar="COMMAND")

    cmd = sub.add_parser("serve", help="run the service")
    cmd.set_defaults(func=cmd_serve)

    cmd = sub.add_parser("emulator", help="run the WeCom emulator (demo corp)")
    cmd.add_argument("--port", type=int, help="override emulator.port")
    cmd.set_defaults(func=cmd_emulator)

    cmd = sub.add_parser("demo", help="play a customer story against the emulator, on a temporary database")
    cmd.add_argument("--keep", action="store_true", help="keep the temporary directory")
    cmd.set_defaults(func=cmd_demo)

    cmd = sub.add_parser("routes", help="print the routing table")
    cmd.set_defaults(func=cmd_routes)

    content = sub.add_parser("content", help="content library tools").add_subparsers(metavar="ACTION")
    add_content_commands(content)
    preview = add_preview_command(content)
    add_tagging_preview_option(preview)
    preview.set_defaults(func=_preview)

    tagging = sub.add_parser("tagging", help="tagging rule tools").add_subparsers(metavar="ACTION")
    add_tagging_eval_command(tagging)

    add_channels_commands(
        sub.add_parser("channels", help="channel live codes").add_subparsers(metavar="ACTION")
    )

    add_sop_commands(sub.add_parser("sop", help="SOP playbook tools").add_subparsers(metavar="ACTION"))

    customer = sub.add_parser("customer", help="customer profiles").add_subparsers(metavar="ACTION")
    add_customer_commands(customer)

    faq = sub.add_parser("faq", help="FAQ matcher tools").add_subparsers(metavar="ACTION")
    add_faq_eval_command(faq)

    config = sub.add_parser("config", help="settings tools").add_subparsers(metavar="ACTION")
    cmd = config.add_parser("show", help="print the effective settings, secrets masked")
    cmd.set_defaults(func=cmd_config_show)

    dbp = sub.add_parser("db", help="database tools").add_subparsers(metavar="ACTION")
    cmd = dbp.add_parser("upgrade", help="apply migrations")
    cmd.set_defaults(func=cmd_db_upgrade)
    cmd = dbp.add_parser("current", help="print the schema revision")
    cmd.set_defaults(func=cmd_db_current)

    inbox = sub.add_parser("inbox", help="inbox tools").add_subparsers(metavar="ACTION")
    cmd = inbox.add_parser("failed", help="list dead-lettered callbacks")
    cmd.add_argument("--limit", type=int, default=50)
    cmd.set_defaults(func=cmd_inbox_failed)
    cmd = inbox.add_parser("replay", help="process a dead-lettered callback again")
    cmd.add_argument("id", type=int)
    cmd.set_defaults(func=cmd_inbox_replay)

    outbox = sub.add_parser("outbox", help="outbox tools").add_subparsers(metavar="ACTION")
    cmd = outbox.add_parser("failed", help="list WeCom calls that failed for good")
    cmd.add_argument("--limit", type=int, default=50)
    cmd.set_defaults(func=cmd_outbox_failed)
    cmd = outbox.add_parser("retry", help="send a failed call again")
    cmd.add_argument("id", type=int)
    cmd.set_defaults(func=cmd_outbox_retry)
    return parser


def _preview(args: argparse.Namespace) -> int:
    """`content preview TEXT`: the FAQ matcher's view, or with --tagging the tagging rules' view."""
    return cmd_tagging_preview(args) if args.tagging else cmd_preview(args)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; then finish in-flight work and exit."""
    from aiohttp import web

    from bot.app import create_app

    settings = _settings(args)
    setup_logging(settings.logging.level, settings.logging.format, secret_values(settings))
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.service.host,
        port=settings.service.port,
        shutdown_timeout=settings.service.shutdown_timeout_seconds,
        access_log=None,
        print=lambda *_: None,
    )
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    """Run the WeCom emulator for the configured (demo) corp."""
    from aiohttp import web

    from bot.clock import SystemClock
    from bot.wecom.emulator import create_emulator

    settings = _settings(args)
    setup_logging(settings.logging.level, "text", secret_values(settings))
    port = args.port or settings.emulator.port
    print(f"WeCom emulator for corp {settings.wecom.corp_id} on http://{settings.emulator.host}:{port}")
    web.run_app(
        create_emulator(settings, clock=SystemClock()),
        host=settings.emulator.host,
        port=port,
        print=lambda *_: None,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Play the demo story; exit 0 when every expectation held."""
    from bot.demo import run_demo

    return asyncio.run(run_demo(_settings(args), keep=args.keep))


def cmd_routes(args: argparse.Namespace) -> int:
    """Print router, routes and handler for every registered handler."""
    from bot.router import Dispatcher
    from bot.runtime import default_routers

    rows = Dispatcher(default_routers()).table()
    width = max(len(r[0]) for r in rows)
    for router, routes, handler in rows:
        print(f"{router:<{width}}  {routes}  ->  {handler}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the effective settings with secrets masked."""
    print(json.dumps(masked_dump(_settings(args)), ensure_ascii=False, indent=2))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply migrations to the configured database."""
    from bot.store import db

    settings = _settings(args)

    async def run() -> None:
        engine = db.create_engine(settings.database.url)
        try:
            await db.upgrade(engine)
            print(f"database at revision {await db.current_revision(engine)}")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    """Print the schema revision and the one this code needs."""
    from bot.store import db

    settings = _settings(args)

    async def run() -> None:
        engine = db.create_engine(settings.database.url)
        try:
            print(f"current={await db.current_revision(engine)} head={db.head_revision()}")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def _with_sessions(args: argparse.Namespace, fn: Callable[[Any, Settings], Awaitable[int]]) -> int:
    from bot.store import db

    settings = _settings(args)

    async def run() -> int:
        engine = db.create_engine(settings.database.url)
        try:
            await db.prepare(engine, auto_upgrade=db.is_sqlite(settings.database.url))
            return await fn(db.sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def cmd_inbox_failed(args: argparse.Namespace) -> int:
    """List dead-lettered inbox rows."""
    from bot.clock import SystemClock
    from bot.inbox import Inbox

    async def run(sessions: Any, settings: Settings) -> int:
        rows = await Inbox(sessions, SystemClock()).failed(args.limit)
        if not rows:
            print("no failed callbacks")
        for row in rows:
            print(f"#{row.id}  {_when(row.received_at)}  {row.route_key}  attempts={row.attempts}")
            print(f"      key={row.dedup_key}")
            print(f"      error={row.last_error}")
        return 0

    return _with_sessions(args, run)


def cmd_inbox_replay(args: argparse.Namespace) -> int:
    """Put one inbox row back in line; a running service picks it up."""
    from bot.clock import SystemClock
    from bot.inbox import Inbox

    async def run(sessions: Any, settings: Settings) -> int:
        if await Inbox(sessions, SystemClock()).replay(args.id):
            print(f"inbox row #{args.id} queued again")
            return 0
        print(f"inbox row #{args.id} is not failed or done (or does not exist)", file=sys.stderr)
        return 1

    return _with_sessions(args, run)


def cmd_outbox_failed(args: argparse.Namespace) -> int:
    """List WeCom calls that failed for good, with their errcodes."""
    from bot.outbox import failed_rows

    async def run(sessions: Any, settings: Settings) -> int:
        rows = await failed_rows(sessions, args.limit)
        if not rows:
            print("no failed sends")
        for row in rows:
            print(
                f"#{row.id}  {_when(row.created_at)}  {row.kind}  errcode={row.last_errcode}  "
                f"attempts={row.attempts}"
            )
            print(f"      key={row.idem_key}")
            print(f"      error={row.last_error}")
        return 0

    return _with_sessions(args, run)


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    """Put one failed send back in line."""
    from bot.clock import SystemClock
    from bot.outbox import retry_row

    async def run(sessions: Any, settings: Settings) -> int:
        if await retry_row(sessions, args.id, SystemClock().timestamp()):
            print(f"outbox row #{args.id} queued again")
            return 0
        print(f"outbox row #{args.id} is not failed (or does not exist)", file=sys.stderr)
        return 1

    return _with_sessions(args, run)
