"""`siyu content validate` and `siyu content publish`; bot/cli.py wires them under `content`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from pathlib import Path

from bot import content, errors, tagging, welcome_rules
from bot.clock import SystemClock
from bot.config import Settings, load_settings


def add_content_commands(content_subparsers: argparse._SubParsersAction) -> None:
    """Register `validate` and `publish` on the `content` subcommand's subparsers."""
    cmd = content_subparsers.add_parser(
        "validate", help="check the content library; errors as file:line: reason"
    )
    cmd.add_argument("--dir", help="library directory (default: content.dir from the settings)")
    cmd.set_defaults(func=cmd_validate)

    cmd = content_subparsers.add_parser("publish", help="validate the library and store it in the database")
    cmd.add_argument("--dir", help="library directory (default: content.dir from the settings)")
    cmd.add_argument("--by", help="who publishes (default: the current user)")
    cmd.set_defaults(func=cmd_publish)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print OK with counts, or every error; exit 1 on errors."""
    # With --dir no settings are read, so CI can check ops' pull requests without a config.yaml.
    directory = Path(args.dir) if getattr(args, "dir", None) else Path(_settings(args).content.dir)
    problems: list[errors.ContentError] = []
    snapshot = None
    try:
        snapshot = content.load_library(directory)
    except content.ContentErrors as exc:
        problems += exc.errors
    rules = directory / "tagging.yaml"
    if rules.exists():
        try:
            tagging.load_rules(rules)
        except errors.ContentErrors as exc:
            problems += exc.errors
    welcome = directory / welcome_rules.WELCOME_FILE
    if welcome.exists():
        try:
            welcome_rules.load_rules(welcome, library_dir=directory)
        except errors.ContentErrors as exc:
            problems += exc.errors
    if problems:
        _print_errors(directory, content.ContentErrors(problems))
        return 1
    checked = [what for what, path in (("tagging", rules), ("welcome", welcome)) if path.exists()]
    print(f"OK {directory}: {summary(snapshot)}" + "".join(f", {what} rules valid" for what in checked))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate, store as the newest ContentVersion and print its digest; exit 1 on errors."""
    from bot.store import db

    settings = _settings(args)
    directory = Path(args.dir) if getattr(args, "dir", None) else Path(settings.content.dir)
    published_by = getattr(args, "by", None) or _user()

    async def run() -> content.ContentVersion | None:
        engine = db.create_engine(settings.database.url)
        try:
            await db.prepare(engine, auto_upgrade=db.is_sqlite(settings.database.url))
            return await content.publish(
                db.sessionmaker(engine), directory, published_by, clock=SystemClock()
            )
        finally:
            await engine.dispose()

    try:
        version = asyncio.run(run())
    except content.ContentErrors as exc:
        _print_errors(directory, exc)
        return 1
    digest = content.digest_files(content.read_library_files(directory))
    if version is None:
        print(f"{digest} is already the newest published version")
    else:
        print(f"published {version.digest} ({len(version.files)} files) by {published_by or '-'}")
    return 0


def summary(snapshot: content.ContentSnapshot) -> str:
    """Counts of what the library holds, one line."""
    faqs = snapshot.faq.faqs
    enabled = sum(1 for entry in faqs if entry.enabled)
    synonyms, handoff, replies = snapshot.synonyms, snapshot.handoff, snapshot.replies
    return (
        f"{len(faqs)} FAQs ({enabled} enabled), {len(synonyms.synonyms)} synonym groups, "
        f"{len(synonyms.brand_words)} brand words, {len(handoff.phrases)} hand-off phrases, "
        f"{len(handoff.complaint_words)} complaint words, {len(replies.scripts())} scripts "
        f"in {len(replies.categories)} categories; digest {snapshot.digest[:12]}"
    )


def _print_errors(directory: Path, exc: content.ContentErrors) -> None:
    for error in exc.errors:
        # Paths relative to the working directory, so editors and CI annotations can jump to them.
        path = error.file if Path(error.file) == directory else str(directory / error.file)
        where = f"{path}:{error.line}" if error.line is not None else path
        print(f"{where}: {error.reason}")
    print(f"{len(exc.errors)} error(s)")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a bare container: publish anonymously rather than fail
        return ""
