"""`siyu customer show EXTERNAL_USERID [--json]`: bot/cli.py wires it under `customer`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bot.clock import SystemClock
from bot.config import load_settings
from bot.profile import load_profile, render, to_json
from bot.store import db


def add_customer_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register `show` on the `customer` subcommand's subparsers."""
    cmd = subparsers.add_parser("show", help="print a customer's profile: channel, guides, tags, timeline")
    cmd.add_argument("external_userid", metavar="EXTERNAL_USERID")
    cmd.add_argument("--json", action="store_true", help="print the API's JSON instead of text")
    cmd.set_defaults(func=cmd_customer_show)
    return cmd


def cmd_customer_show(args: argparse.Namespace) -> int:
    """Print the profile; 1 when the customer is unknown."""
    settings = load_settings(getattr(args, "config", None))

    async def run() -> int:
        engine = db.create_engine(settings.database.url)
        try:
            await db.prepare(engine, auto_upgrade=db.is_sqlite(settings.database.url))
            today = SystemClock().now().date()
            profile = await load_profile(db.sessionmaker(engine), args.external_userid, today)
        finally:
            await engine.dispose()
        if profile is None:
            print(f"siyu: unknown customer {args.external_userid}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(to_json(profile), ensure_ascii=False, indent=2))
        else:
            print(render(profile))
        return 0

    return asyncio.run(run())
