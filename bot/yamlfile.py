"""YAML loading that remembers where every value came from, so validation errors read `file:line`.

`load_text(text, name)` composes the document with PyYAML's SafeLoader, constructs the data from
the node tree and records the start line of every mapping entry (the key's line) and sequence item
by path. `Loaded.line_of(loc)` maps a pydantic error location back to the nearest recorded line.
A YAML syntax error raises `errors.ContentError` with the parser's own line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot import errors

Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class Loaded:
    """A parsed YAML document, the line of every path in it, and duplicate-key problems."""

    name: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: tuple[errors.ContentError, ...] = ()

    def line_of(self, loc: Sequence[Any]) -> int | None:
        """The 1-based line of `loc`, or of its nearest recorded ancestor."""
        # Pydantic locations may carry segments the document does not have (a union member's tag,
        # "[key]" for dict keys, a field a before-validator nested): skip those, keep the rest.
        path: Path_ = ()
        best = self.lines.get(path)
        for part in loc:
            candidate = (*path, part)
            if candidate in self.lines:
                path = candidate
                best = self.lines[path]
        return best


def load(path: str | Path, name: str | None = None) -> Loaded:
    """Read and parse the YAML file at `path`; errors name it `name` (default: the path)."""
    path = Path(path)
    return load_text(path.read_text(encoding="utf-8"), name or str(path))


def load_text(text: str, name: str) -> Loaded:
    """Parse `text`; a syntax error raises ContentError(name, line, problem)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Loaded(name, None, {(): 1})
        lines: dict[Path_, int] = {}
        problems: list[errors.ContentError] = []
        # Walk before constructing: construction flattens `<<` merge keys in place.
        _walk(loader, node, (), lines, problems, name)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise errors.ContentError(name, mark.line + 1 if mark else None, f"YAML syntax: {reason}") from exc
    except yaml.YAMLError as exc:
        raise errors.ContentError(name, None, f"YAML syntax: {exc}") from exc
    finally:
        loader.dispose()
    return Loaded(name, data, lines, tuple(problems))


def _walk(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path_,
    lines: dict[Path_, int],
    problems: list[errors.ContentError],
    name: str,
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                # PyYAML silently keeps the last value; an ops typo should not vanish like that.
                problems.append(
                    errors.ContentError(name, line, f"duplicate key {key!r} (first on line {seen[key]})")
                )
                continue
            seen[key] = line
            lines[(*path, key)] = line
            _walk(loader, value_node, (*path, key), lines, problems, name)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(loader, item, (*path, index), lines, problems, name)


def _key(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node)
    return node.start_mark.line  # an unhashable key; construction has already refused it


def problems_from(
    exc: ValidationError,
    loaded: Loaded,
    *,
    union_tags: frozenset[str] = frozenset(),
    skip: Callable[[tuple[Any, ...]], bool] | None = None,
) -> list[errors.ContentError]:
    """Every error of a pydantic validation as `file:line: where: reason`, `where` in the YAML's terms."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if skip is not None and skip(loc):
            continue
        where = dotted(loc, loaded, union_tags)
        reason = _reason(err["msg"])
        out.append(
            errors.ContentError(loaded.name, loaded.line_of(loc), f"{where}: {reason}" if where else reason)
        )
    return out


def dotted(loc: tuple[Any, ...], loaded: Loaded, union_tags: frozenset[str] = frozenset()) -> str:
    """`faqs[3].answer` for a pydantic location, leaving out segments the document does not have."""
    out = ""
    path: tuple[Any, ...] = ()
    for position, part in enumerate(loc):
        if (*path, part) in loaded.lines:
            path = (*path, part)
        elif part in union_tags or not (
            position == len(loc) - 1 and isinstance(part, str) and part != "[key]"
        ):
            # A union tag, "[key]" or a nested helper field: not something ops wrote. A missing
            # field is kept, as the last segment, so the message says what is missing.
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
