"""`siyu sop validate`; bot/cli.py wires it under `sop`."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bot import content, errors, playbooks
from bot.config import load_settings


def add_sop_commands(sop_subparsers: argparse._SubParsersAction) -> None:
    """Register `validate` on the `sop` subcommand's subparsers."""
    cmd = sop_subparsers.add_parser(
        "validate", help="check sop/ (stages and playbooks); errors as file:line: reason"
    )
    cmd.add_argument("--dir", default="sop", help="sop directory (default: sop)")
    cmd.add_argument(
        "--content-dir",
        help="content library whose replies.yaml `reply:` ids must name "
        "(default: content.dir from the settings, or content_library when there are none)",
    )
    cmd.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print OK with counts, or every error; exit 1 on errors."""
    directory = Path(args.dir)
    problems: list[errors.ContentError] = []
    stages, stage_names = _stages(directory, problems)
    library = None
    library_dir = _content_dir(args)
    if library_dir is not None:
        try:
            library = content.load_library(library_dir)
        except errors.ContentErrors:
            # The library's own errors are `siyu content validate`'s to report; say why refs went unchecked.
            problems.append(
                errors.ContentError(
                    str(library_dir), None, "content library invalid: `reply:` ids not checked"
                )
            )
    result = None
    try:
        result = playbooks.load_playbooks(directory, library, stage_names)
    except errors.ContentErrors as exc:
        problems += exc.errors
    if problems:
        for error in problems:
            path = error.file if Path(error.file) in (directory, library_dir) else str(directory / error.file)
            print(
                f"{path}:{error.line}: {error.reason}"
                if error.line is not None
                else f"{path}: {error.reason}"
            )
        print(f"{len(problems)} error(s)")
        return 1
    assert result is not None
    steps = sum(len(p.steps) for p in result.playbooks)
    enabled = len(result.enabled())
    parts = [f"{len(result.playbooks)} playbooks ({enabled} enabled), {steps} steps"]
    if stages is not None:
        parts.append(f"{playbooks.STAGES_FILE} valid")
    if library is None:
        parts.append("reply ids not checked (no content library)")
    print(f"OK {directory}: " + ", ".join(parts) + f"; digest {result.digest[:12]}")
    return 0


def _stages(directory: Path, problems: list[errors.ContentError]) -> tuple[Any, Collection[str] | None]:
    """The stages config and its stage names, when stages.yaml and bot/lifecycle.py both exist."""
    path = directory / playbooks.STAGES_FILE
    if not path.exists():
        return None, None
    try:
        # Imported here: the lifecycle module is optional for validating playbooks alone.
        from bot import lifecycle  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None, None
    try:
        config = lifecycle.load_stages(path)
    except errors.ContentErrors as exc:
        problems.extend(
            errors.ContentError(playbooks.STAGES_FILE, e.line, e.reason)
            if Path(e.file).name == playbooks.STAGES_FILE
            else e
            for e in exc.errors
        )
        return None, None
    return config, _stage_names(lifecycle, config)


def _stage_names(module: Any, config: Any) -> Collection[str] | None:
    """The stage names the lifecycle knows; None when they cannot be read."""
    names = getattr(module, "STAGES", None) or getattr(config, "names", None)
    if callable(names):
        names = names()
    if names is None:
        stages = getattr(config, "stages", None)
        if isinstance(stages, dict):
            names = list(stages)
        elif isinstance(stages, list | tuple):
            names = [getattr(s, "name", None) or getattr(s, "id", None) for s in stages]
    if not names or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names)


def _content_dir(args: argparse.Namespace) -> Path | None:
    if getattr(args, "content_dir", None):
        return Path(args.content_dir)
    try:
        return Path(load_settings(getattr(args, "config", None)).content.dir)
    except errors.ConfigError:
        # No usable settings (e.g. CI on an ops pull request): fall back to the conventional path.
        fallback = Path("content_library")
        return fallback if fallback.is_dir() else None
