"""YAML loading that remembers where every value came from, so validation errors read `file:line`.

`load_text(text, name)` composes the document with PyYAML's SafeLoader, constructs the data from
the node tree and records the start line of every mapping entry (the key's line) and sequence item
by path. `Loaded.line_of(loc)` maps a pydantic error location back to the nearest recorded line.
A YAML syntax error raises `errors.ContentError` with the parser's own line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
