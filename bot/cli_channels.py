"""`siyu channels sync [--dry-run]` and `siyu channels list`; bot/cli.py wires them under `channels`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot import errors
from bot.channel_sync import Result, stored_codes, sync
from bot.channels import CHANNELS_FILE, load_channels
from bot.clock import SystemClock
from bot.config import Settings, load_settings

__all__ = ["add_channels_commands", "cmd_channels_list", "cmd_channels_sync", "format_table"]


def add_channels_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `sync` and `list` on the `channels` subcommand's subparsers."""
    cmd = subparsers.add_parser(
        "sync", help="create / update / delete the WeCom codes to match channels.yaml"
    )
    cmd.add_argument("--file", help="channels file (default: channels.yaml in content.dir)")
    cmd.add_argument("--dry-run", action="store_true", help="print the plan, call nothing")
    cmd.set_defaults(func=cmd_channels_sync)

    cmd = subparsers.add_parser("list", help="print the stored codes (config_id, QR code URL, users)")
    cmd.set_defaults(func=cmd_channels_list)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned table (Chinese characters count double, as a terminal shows them)."""
    widths = [max(_width(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c) + " " * (w - _width(str(c))) for c, w in zip(cells, widths, strict=False))

    return "\n".join([line(headers), *(line(row) for row in rows)]).rstrip()


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _result_rows(results: Sequence[Result]) -> list[list[str]]:
    return [
        [
            r.key,
            r.name or "-",
            r.state or "-",
            ",".join(r.users) or "-",
            r.config_id or "-",
            r.qr_code or "-",
            r.change + (f": {r.error}" if r.error else ""),
        ]
        for r in results
    ]


def cmd_channels_sync(args: argparse.Namespace) -> int:
    """Reconcile and print the table; exit 1 when any channel failed, 2 on an invalid file."""
    settings = load_settings(getattr(args, "config", None))
    path = Path(args.file) if getattr(args, "file", None) else Path(settings.content.dir) / CHANNELS_FILE
    try:
        channels = load_channels(path)
    except errors.ContentErrors as exc:
        for problem in exc.errors:
            print(problem, file=sys.stderr)
        return 2
    clock = SystemClock()

    async def run() -> list[Result]:
        async with _Services(settings, clock, need_client=not args.dry_run) as (sessions, client):
            return await sync(
                client, sessions, channels, clock.now().date(), now=clock.timestamp(), dry_run=args.dry_run
            )

    results = asyncio.run(run())
    headers = ["key", "name", "state", "users", "config_id", "qr_code", "change"]
    print(format_table(headers, _result_rows(results)))
    return 1 if any(r.error for r in results) else 0


def cmd_channels_list(args: argparse.Namespace) -> int:
    """Print every stored code."""
    settings = load_settings(getattr(args, "config", None))

    async def run() -> list[list[str]]:
        async with _Services(settings, SystemClock(), need_client=False) as (sessions, _):
            rows = await stored_codes(sessions)
        return [
            [r.key, r.state, ",".join(r.users or ()) or "-", r.config_id or "-", r.qr_code or "-"]
            for r in rows.values()
        ]

    rows = asyncio.run(run())
    if not rows:
        print("no channel codes stored; run `siyu channels sync`")
        return 0
    print(format_table(["key", "state", "users", "config_id", "qr_code"], rows))
    return 0


class _Services:
    """Database sessions and (when needed) a WeCom client for one CLI run, closed afterwards."""

    def __init__(self, settings: Settings, clock: SystemClock, *, need_client: bool) -> None:
        self._settings, self._clock, self._need_client = settings, clock, need_client
        self._closers: list[Any] = []

    async def __aenter__(self) -> tuple[Any, Any]:
        from bot.store import db

        settings = self._settings
        engine = db.create_engine(settings.database.url)
        self._closers.append(engine.dispose)
        await db.prepare(engine, auto_upgrade=db.is_sqlite(settings.database.url))
        client = None
        if self._need_client:
            import aiohttp

            from bot.kv import create_kv
            from bot.wecom.client import WeComClient
            from bot.wecom.tokens import TokenCache

            http = aiohttp.ClientSession()
            kv = create_kv(settings, self._clock)
            self._closers += [http.close, kv.close]
            tokens = TokenCache(kv, self._clock, margin=settings.wecom.token_refresh_margin_seconds)
            client = WeComClient.from_settings(settings, http, tokens, kv, self._clock)
        return db.sessionmaker(engine), client

    async def __aexit__(self, *exc: object) -> None:
        for close in reversed(self._closers):
            await close()
