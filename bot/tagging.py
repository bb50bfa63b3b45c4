"""Tagging rules (`content_library/tagging.yaml`): typed models, and validation reporting `file:line: reason`.

The format lets ops describe a brand's taxonomy without code:

- `groups`: tag group -> tags (they map to WeCom corp tag groups and tags);
- `language`: the words that make a mention not count, general Chinese by default: `negators`
  (right before a hit: 不是 / 没有 / 不喝), `questions` (有没有 / 能不能 are not negations),
  `irrealis` (a clause about the past or a hypothetical: 以前 / 要是 / 的话) and `others` (a clause
  about someone else: 姐姐 / 闺蜜 / 朋友);
- `rules`: a tag when keywords (`any`, `all` — each item a keyword or a list meaning any of them —,
  `none`) or regex `patterns` hit, optionally only `when` (or `unless`) an extracted attribute is in
  a range, with `points` for the lead score;
- `attributes`: values pulled out with an `extractor` (age, number, month, year_month,
  pregnancy_weeks, choice) through `patterns` holding one `{value}` placeholder.

`load_rules(path)` raises `errors.ContentErrors` listing every problem; the engine that runs the
rules is `handlers/tag_extract.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

from bot import errors, numerals, yamlfile

__all__ = [
    "EXTRACTORS",
    "PLACEHOLDERS",
    "AttrCondition",
    "AttributeSpec",
    "Language",
    "TagRule",
    "TaggingRules",
    "expand",
    "load_rules",
    "load_rules_text",
]

TAGGING_FILE = "tagging.yaml"

EXTRACTORS: Mapping[str, str] = {
    "age": numerals.AGE,
    "number": numerals.NUMBER,
    "month": numerals.MONTH,
    "year_month": numerals.YEAR_MONTH,
    "pregnancy_weeks": numerals.WEEKS,
    "choice": "",  # the attribute's own `values`
}
"""Extractor name -> the regex its `{value}` placeholder stands for."""

PLACEHOLDERS: Mapping[str, str] = {
    "number": numerals.NUMBER,
    "age": numerals.AGE,
    "month": numerals.MONTH,
    "year_month": numerals.YEAR_MONTH,
    "weeks": numerals.WEEKS,
}
"""Placeholders a tag rule's pattern may use, e.g. `预约{number}杯`."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_ID = re.compile(r"[a-z][a-z0-9_]*")


def _snake_case(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"id {value!r} must be snake_case (a-z, 0-9, _; starting with a letter)")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Id = Annotated[str, AfterValidator(_snake_case)]
Words = tuple[Text, ...]


class _Model(BaseModel):
    # Numbers become strings: ops write keywords like `12315` or `3段` without quotes.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


def expand(pattern: str, placeholders: Mapping[str, str]) -> str:
    """`pattern` with each `{name}` replaced by its regex (as a named group `value` when name is value)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in placeholders:
            raise ValueError(f"unknown placeholder {{{name}}}; known: " + ", ".join(sorted(placeholders)))
        body = placeholders[name]
        return f"(?P<value>{body})" if name == "value" else f"(?:{body})"

    return _PLACEHOLDER.sub(fill, pattern)


def _check_regex(pattern: str, placeholders: Mapping[str, str]) -> str:
    try:
        re.compile(expand(pattern, placeholders))
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
    return pattern


def _tag_pattern(pattern: str) -> str:
    return _check_regex(pattern, PLACEHOLDERS)


class Language(_Model):
    """Words that stop a mention from counting; the defaults are general Chinese, a brand may extend them."""

    negators: Words = (
        "不是",
        "不",
        "没有",
        "没",
        "别",
        "不用",
        "不要",
        "不想",
        "不喝",
        "不喜欢",
        "不爱",
        "并非",
    )
    questions: Words = (
        "有没有",
        "是不是",
        "能不能",
        "可不可以",
        "要不要",
        "会不会",
        "好不好",
        "行不行",
        "用不用",
        "没问题",
    )
    irrealis: Words = ("以前", "之前", "曾经", "当年", "要是", "如果", "假如", "的话", "万一")
    others: Words = (
        "姐姐",
        "姐家",
        "妹妹",
        "哥哥",
        "弟弟",
        "闺蜜",
        "朋友",
        "同事",
        "同学",
        "外甥",
        "侄子",
        "侄女",
        "表姐",
        "表妹",
        "表哥",
        "堂姐",
        "邻居",
        "亲戚",
        "嫂子",
        "别人",
    )
    negation_gap: Annotated[int, Field(ge=0, le=4)] = 1
    """Characters allowed between a negator and the word it negates (不是给孩子: one)."""


class AttrCondition(_Model):
    """An extracted attribute's value in a range (numbers; ages in months)."""

    key: Text
    min: float | None = None
    max: float | None = None

    def holds(self, value: float | None) -> bool:
        """True when `value` is present and within [min, max]."""
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


Scope = Literal["self", "any"]


class TagRule(_Model):
    """One way a message earns a tag."""

    id: Id
    tag: Text
    any: Words = ()
    all: tuple[Text | Words, ...] = ()
    none: Words = ()
    patterns: tuple[Annotated[Text, AfterValidator(_tag_pattern)], ...] = ()
    when: AttrCondition | None = None
    unless: AttrCondition | None = None
    scope: Scope = "self"
    others: Words = ()
    negation: bool = True
    points: int = 0
    note: str = ""


class AttributeSpec(_Model):
    """One way to read an attribute's value from a message."""

    id: Id
    key: Text
    extractor: Text
    patterns: tuple[Text, ...]
    values: Words = ()
    age_key: Text | None = None
    min: float | None = None
    max: float | None = None
    pick: Literal["first", "last", "min", "max"] = "first"
    none: Words = ()
    clause_none: Words = ()
    scope: Scope = "self"
    others: Words = ()
    negation: bool = True
    points: int = 0
    note: str = ""

    def placeholders(self) -> dict[str, str]:
        """`{value}` for this extractor (a choice is its own values, longest first), plus the tag ones."""
        if self.extractor == "choice":
            body = "|".join(re.escape(v) for v in sorted(self.values, key=len, reverse=True)) or "(?!)"
        else:
            body = EXTRACTORS[self.extractor]
        return {**PLACEHOLDERS, "value": body}


class TaggingRules(_Model):
    """`tagging.yaml`: a brand's tag groups, language, rules and attributes."""

    brand: Text
    groups: dict[Text, Words]
    language: Language = Language()
    rules: tuple[TagRule, ...] = ()
    attributes: tuple[AttributeSpec, ...] = ()
    _compiled: Any = PrivateAttr(default=None)

    def tags(self) -> list[str]:
        """Every tag, in group order."""
        return [tag for group in self.groups.values() for tag in group]

    def group_of(self, tag: str) -> str | None:
        """The group `tag` belongs to."""
        return next((name for name, tags in self.groups.items() if tag in tags), None)


# -------------------------------------------------------------------------------------------- loading


def load_rules(path: str | Path) -> TaggingRules:
    """Load and validate a rules file; raises ContentErrors listing every problem as file:line: reason."""
    path = Path(path)
    if not path.is_file():
        raise errors.ContentErrors([errors.ContentError(str(path), None, "rules file not found")])
    return load_rules_text(path.read_bytes().decode("utf-8"), str(path))


def load_rules_text(text: str, name: str = TAGGING_FILE) -> TaggingRules:
    """Validate rules given as YAML text; errors are named `name`."""
    try:
        loaded = yamlfile.load_text(text, name)
    except errors.ContentError as exc:
        raise errors.ContentErrors([exc]) from exc
    problems = list(loaded.problems)
    model: TaggingRules | None = None
    try:
        model = TaggingRules.model_validate(loaded.data)
    except ValidationError as exc:
        problems += yamlfile.problems_from(exc, loaded)
    # Cross-checks read the raw data so that they still report when a neighbouring rule is invalid.
    _check_references(loaded, problems)
    if problems or model is None:
        raise errors.ContentErrors(sorted(problems, key=lambda e: e.line or 0))
    return model


def _items(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _check_references(loaded: yamlfile.Loaded, problems: list[errors.ContentError]) -> None:
    """Duplicate ids and tags, unknown tags, extractors and attribute keys, pattern placeholders."""
    data = loaded.data
    name = loaded.name

    def report(loc: tuple[Any, ...], reason: str) -> None:
        problems.append(errors.ContentError(name, loaded.line_of(loc), reason))

    tags: dict[str, str] = {}
    groups = data.get("groups") if isinstance(data, dict) else None
    for group, members in (groups or {}).items() if isinstance(groups, dict) else ():
        for index, tag in enumerate(members if isinstance(members, list) else ()):
            if str(tag) in tags:
                report(("groups", group, index), f"tag {tag!r} is in group {tags[str(tag)]!r} already")
            tags[str(tag)] = str(group)

    ids: dict[str, int | None] = {}

    def check_id(section: str, index: int, item: dict[str, Any]) -> None:
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return
        if item_id in ids:
            report((section, index, "id"), f"duplicate id {item_id!r} (first on line {ids[item_id]})")
        else:
            ids[item_id] = loaded.line_of((section, index, "id"))

    keys: set[str] = set()
    for index, spec in _items(data, "attributes"):
        check_id("attributes", index, spec)
        keys.add(str(spec.get("key")))
        extractor = spec.get("extractor")
        if extractor is None:
            continue
        if extractor not in EXTRACTORS:
            report(
                ("attributes", index, "extractor"),
                f"unknown extractor {extractor!r}; known: {', '.join(EXTRACTORS)}",
            )
            continue
        if extractor == "choice" and not spec.get("values"):
            report(("attributes", index, "extractor"), "a choice extractor needs `values`")
        if extractor == "age":
            keys.add(str(spec.get("age_key") or ""))
        placeholders = {**PLACEHOLDERS, "value": EXTRACTORS[extractor] or "x"}
        patterns = spec.get("patterns")
        for p_index, pattern in enumerate(patterns if isinstance(patterns, list) else ()):
            loc = ("attributes", index, "patterns", p_index)
            if not isinstance(pattern, str):
                continue
            if len(re.findall(r"\{value\}", pattern)) != 1:
                report(loc, f"pattern {pattern!r} needs exactly one {{value}} placeholder")
                continue
            try:
                _check_regex(pattern, placeholders)
            except ValueError as exc:
                report(loc, str(exc))

    for index, rule in _items(data, "rules"):
        check_id("rules", index, rule)
        tag = rule.get("tag")
        if tag is not None and str(tag) not in tags:
            report(("rules", index, "tag"), f"unknown tag {tag!r}: add it to a group under `groups`")
        for field in ("when", "unless"):
            condition = rule.get(field)
            key = condition.get("key") if isinstance(condition, dict) else None
            if key is not None and str(key) not in keys:
                report((("rules", index, field, "key")), f"unknown attribute {key!r} in {field}")
        if not any(rule.get(field) for field in ("any", "all", "patterns", "when")):
            report(("rules", index), "a rule needs at least one of any, all, patterns or when")
