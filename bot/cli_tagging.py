"""`siyu tagging eval` and the tagging part of `siyu content preview`: argparse pieces for bot/cli.py."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from bot import errors
from bot.clock import SystemClock
from bot.tagging import load_rules
from bot.tagging_eval import SAMPLE_DATE, run
from handlers.tag_extract import preview

__all__ = [
    "DEFAULT_RULES",
    "add_tagging_eval_command",
    "add_tagging_preview_option",
    "cmd_tagging_eval",
    "cmd_tagging_preview",
    "parse_day",
    "preview_tagging",
]

DEFAULT_RULES = Path("content_library/tagging.yaml")


def parse_day(text: str) -> dt.date:
    """`YYYY-MM-DD` as a date (an argparse type)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def cmd_tagging_eval(args: argparse.Namespace) -> int:
    """Score the rules on an utterances TSV; 0 on success, 2 on a missing or invalid file."""
    for label, path in (("rules", args.rules), ("utterances", args.utterances)):
        if not Path(path).is_file():
            print(f"tagging eval: {label} file not found: {path}", file=sys.stderr)
            return 2
    today = args.today or SAMPLE_DATE
    try:
        run(
            args.rules,
            args.utterances,
            today=today,
            predictions_out=args.predictions_out,
            out=sys.stdout,
            show_misses=getattr(args, "misses", False),
        )
    except errors.ContentErrors as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"tagging eval: {exc}", file=sys.stderr)
        return 2
    return 0


def add_tagging_eval_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `eval --rules FILE --utterances FILE.tsv [--today YYYY-MM-DD] [--predictions-out FILE]`."""
    p = subparsers.add_parser("eval", help="score tagging rules on a text<TAB>tags<TAB>attributes TSV")
    p.add_argument("--rules", required=True, help="tagging rules YAML")
    p.add_argument("--utterances", required=True, help="TSV with header text<TAB>tags<TAB>attributes")
    p.add_argument(
        "--today",
        type=parse_day,
        default=None,
        help=f"message date for relative times (default: {SAMPLE_DATE.isoformat()}, the sample's)",
    )
    p.add_argument("--predictions-out", default=None, help="write text<TAB>tags<TAB>attributes here")
    p.add_argument("--misses", action="store_true", help="also print every row the rules got wrong")
    p.set_defaults(func=cmd_tagging_eval)
    return p


def preview_tagging(text: str, rules_path: str | Path, today: dt.date) -> str:
    """What the rules at `rules_path` find in `text` dated `today`: tags, attributes, score and why."""
    return preview(text, load_rules(rules_path), today=today)


def cmd_tagging_preview(args: argparse.Namespace) -> int:
    """Print `preview_tagging` for args.text; 2 when the rules are missing or invalid."""
    today = getattr(args, "today", None) or SystemClock().now().date()
    rules = Path(getattr(args, "rules", None) or DEFAULT_RULES)
    try:
        print(preview_tagging(args.text, rules, today))
    except errors.ContentErrors as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def add_tagging_preview_option(parser: argparse.ArgumentParser) -> None:
    """Add `--tagging [--rules FILE] [--today YYYY-MM-DD]` to a preview parser (check args.tagging)."""
    parser.add_argument("--tagging", action="store_true", help="show tags, attributes and why instead")
    parser.add_argument(
        "--rules", default=str(DEFAULT_RULES), help=f"tagging rules (default: {DEFAULT_RULES})"
    )
    parser.add_argument("--today", type=parse_day, default=None, help="message date (default: today)")
