"""`siyu faq eval` and `siyu content preview`: argparse registration for bot/cli.py to wire in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.config import FaqSettings, load_settings
from bot.faq_eval import load_docs, run
from handlers.faq_match import build_index, decide

__all__ = ["DEFAULT_LIBRARY", "add_faq_eval_command", "add_preview_command", "cmd_faq_eval", "cmd_preview"]

DEFAULT_LIBRARY = Path("content_library/faq.yaml")


def _faq_settings(args: argparse.Namespace) -> FaqSettings:
    """The faq section of the settings `siyu` was given (bands, menu size)."""
    return load_settings(getattr(args, "config", None)).faq


def cmd_faq_eval(args: argparse.Namespace) -> int:
    """Evaluate the matcher on a queries TSV; 0 on success, 2 when a file is missing."""
    for label, path in (("library", args.library), ("queries", args.queries)):
        if not Path(path).is_file():
            print(f"faq eval: {label} file not found: {path}", file=sys.stderr)
            return 2
    faq = _faq_settings(args)
    answer = faq.bands.answer if args.answer is None else args.answer
    suggest = faq.bands.suggest if args.suggest is None else args.suggest
    run(
        args.library,
        args.queries,
        answer=answer,
        suggest=suggest,
        menu_size=faq.menu_size,
        max_chars=faq.max_query_chars,
        predictions_out=args.predictions_out,
        do_sweep=args.sweep,
        out=sys.stdout,
    )
    return 0


def add_faq_eval_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `eval --library --queries [--predictions-out] [--sweep] [--answer --suggest]`."""
    p = subparsers.add_parser("eval", help="score the FAQ matcher on a query<TAB>expect TSV")
    p.add_argument("--library", required=True, help="FAQ library YAML (faqs: id, questions, keywords)")
    p.add_argument("--queries", required=True, help="TSV with header query<TAB>expect ('-' = stay silent)")
    p.add_argument("--predictions-out", default=None, help="write query<TAB>predicted<TAB>band here")
    p.add_argument("--sweep", action="store_true", help="also try a grid of (answer, suggest) thresholds")
    p.add_argument("--answer", type=float, default=None, help="answer band threshold (default: config)")
    p.add_argument("--suggest", type=float, default=None, help="suggest band threshold (default: config)")
    p.set_defaults(func=cmd_faq_eval)
    return p


def cmd_preview(args: argparse.Namespace) -> int:
    """Print the top candidates for one message with score, band and reasons; 2 if the library is missing."""
    library = Path(args.library)
    if not library.is_file():
        print(
            f"content preview: FAQ library not found: {library} "
            "(the content library has not been written yet; pass --library FILE)",
            file=sys.stderr,
        )
        return 2
    faq = _faq_settings(args)
    docs, synonyms, brand_words = load_docs(library)
    index = build_index(docs, synonyms=synonyms, brand_words=brand_words)
    answer, suggest = faq.bands.answer, faq.bands.suggest
    limits = {"menu_size": faq.menu_size, "max_chars": faq.max_query_chars}
    decision = decide(index, args.text, answer=answer, suggest=suggest, **limits)
    print(f"band: {decision.band} (answer>={answer:g} suggest>={suggest:g})")
    candidates = index.match(args.text, limit=max(faq.menu_size, 5), max_chars=faq.max_query_chars)
    if not candidates:
        print("no candidates")
    for rank, c in enumerate(candidates, 1):
        reasons = ", ".join(c.reasons) or "-"
        print(f"{rank}. {c.id}  score={c.score:.3f}  question={c.question}  reasons: {reasons}")
    return 0


def add_preview_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `preview TEXT [--library FILE]`."""
    p = subparsers.add_parser("preview", help="show how the FAQ matcher ranks one message")
    p.add_argument("text", help="the customer message")
    p.add_argument("--library", default=str(DEFAULT_LIBRARY), help=f"FAQ YAML (default: {DEFAULT_LIBRARY})")
    p.set_defaults(func=cmd_preview)
    return p
