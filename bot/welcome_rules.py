"""Welcome scripts (`content_library/welcome.yaml`): typed models; validation reports `file:line: reason`.

The format:

- `brand` (optional; default: the FAQ library's brand) fills `{brand}`;
- `guides`: userid -> `name`, `store`, `department` (they fill `{guide_name}` and `{store}`, and rules
  may match on the department);
- `scripts`: id -> A/B `variants`, each with a `weight` (> 0), a `text` using `{customer_name}`
  `{guide_name}` `{store}` `{brand}`, and `attachments` (image by `media_path` under `media/` or
  `pic_url`, link, miniprogram);
- `rules`: ordered, the first that matches wins: `states` (channel codes), `guides`, `departments`,
  `days` (`mon-fri`, `sat,sun`), `time` (`21:00-08:00`, Asia/Shanghai), `dates` (`2026-10-01..2026-10-07`
  or one day), `returning` (true: the customer followed us before or has tags), `tags` (any of) ->
  `script`; `default` names the script when no rule matches.

Time windows: the start is inclusive, the end exclusive; a window whose end is before its start
crosses midnight, and its after-midnight part belongs to the day it started on (a `sat` rule with
`21:00-08:00` covers Saturday 21:00 to Sunday 08:00, for both `days` and `dates`).

`load_rules(path)` raises `errors.ContentErrors` listing every problem; the choice itself is
`handlers/welcome.py`'s `pick_welcome`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from bot import content, errors, yamlfile
from bot.clock import SHANGHAI

__all__ = [
    "WELCOME_FILE",
    "DateRange",
    "Guide",
    "Rule",
    "Script",
    "TimeWindow",
    "Variant",
    "WelcomeRules",
    "load_rules",
    "load_rules_text",
    "rules_from_files",
]

WELCOME_FILE = "welcome.yaml"
VARIABLES = ("brand", "customer_name", "guide_name", "store")

_ID = re.compile(r"[a-z][a-z0-9_]*")
_TIME = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


def _snake_case(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"id {value!r} must be snake_case (a-z, 0-9, _; starting with a letter)")
    return value


def _template(text: str) -> str:
    unknown = [name for name in content.template_variables(text) if name not in VARIABLES]
    if unknown:
        known = ", ".join("{" + name + "}" for name in VARIABLES)
        raise ValueError(f"unknown variable {{{unknown[0]}}}; known: {known}")
    return text


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Id = Annotated[str, AfterValidator(_snake_case)]
Template = Annotated[Text, AfterValidator(_template)]


class _Model(BaseModel):
    # Numbers become strings: a store called 101 or a state like `12` needs no quotes.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


class TimeWindow(BaseModel):
    """Minutes of the day [start, end); end < start crosses midnight."""

    model_config = ConfigDict(frozen=True)

    start: int
    end: int

    @property
    def overnight(self) -> bool:
        """True when the window crosses midnight."""
        return self.end < self.start

    def contains(self, minute: float) -> bool:
        """True when `minute` (of the day, fractional) is inside the window."""
        if self.overnight:
            return minute >= self.start or minute < self.end
        return self.start <= minute < self.end


def parse_window(text: str) -> TimeWindow:
    """`"21:00-08:00"` as a TimeWindow; raises ValueError for anything else."""
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise ValueError(f"time {text!r} must look like 09:00-18:00 (or 21:00-08:00 across midnight)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"time {text!r} is not a time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"time {text!r} is empty: start and end are the same")
    return TimeWindow(start=start, end=end % (24 * 60) if end == 24 * 60 else end)


class DateRange(BaseModel):
    """Days from `first` to `last`, both included."""

    model_config = ConfigDict(frozen=True)

    first: dt.date
    last: dt.date

    def contains(self, day: dt.date) -> bool:
        """True when `day` is in the range."""
        return self.first <= day <= self.last


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"bad date {text!r}: use YYYY-MM-DD") from None


def parse_dates(text: str) -> DateRange:
    """`"2026-10-01..2026-10-07"` or `"2026-12-25"` as a DateRange."""
    first, sep, last = str(text).partition("..")
    start = _date(first)
    end = _date(last) if sep else start
    if end < start:
        raise ValueError(f"bad dates {text!r}: the range ends before it starts")
    return DateRange(first=start, last=end)


def _check_window(text: str) -> str:
    parse_window(text)
    return text


def _check_days(text: str) -> str:
    content.parse_days(text)
    return text


def _check_dates(text: str) -> str:
    parse_dates(text)
    return text


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"weight must be positive, got {value:g}")
    return value


def _at_least_one(items: tuple[Any, ...]) -> tuple[Any, ...]:
    if not items:
        raise ValueError("needs at least one variant")
    return items


class Guide(_Model):
    """A guide as welcome texts name them."""

    name: Text
    store: str = ""
    department: str = ""


class Variant(_Model):
    """One A/B variant of a script."""

    id: Id
    weight: Annotated[float, AfterValidator(_positive)] = 1.0
    text: Template
    attachments: tuple[content.Attachment, ...] = Field(default=(), max_length=9)


class Script(_Model):
    """A welcome script: one or more weighted variants."""

    id: Id
    note: str = ""
    variants: Annotated[tuple[Variant, ...], AfterValidator(_at_least_one)]


class Rule(_Model):
    """When a script applies; every condition given must hold (an absent one always holds)."""

    id: Id
    script: Id
    states: tuple[Text, ...] = ()
    guides: tuple[Text, ...] = ()
    departments: tuple[Text, ...] = ()
    days: Annotated[Text, AfterValidator(_check_days)] | None = None
    time: Annotated[Text, AfterValidator(_check_window)] | None = None
    dates: tuple[Annotated[Text, BeforeValidator(_iso), AfterValidator(_check_dates)], ...] = ()
    returning: bool | None = None
    tags: tuple[Text, ...] = ()
    note: str = ""

    @functools.cached_property
    def window(self) -> TimeWindow | None:
        """The parsed time window."""
        return parse_window(self.time) if self.time else None

    @functools.cached_property
    def weekdays(self) -> frozenset[int] | None:
        """The parsed weekdays (0 = Monday)."""
        return frozenset(content.parse_days(self.days)) if self.days else None

    @functools.cached_property
    def date_ranges(self) -> tuple[DateRange, ...]:
        """The parsed date ranges."""
        return tuple(parse_dates(d) for d in self.dates)

    def matches(
        self,
        *,
        state: str,
        userid: str,
        department: str,
        tags: frozenset[str],
        returning: bool,
        now: dt.datetime,
    ) -> bool:
        """True when every condition of the rule holds at `now` (judged in Asia/Shanghai)."""
        if self.states and state not in self.states:
            return False
        if self.guides and userid not in self.guides:
            return False
        if self.departments and department not in self.departments:
            return False
        if self.returning is not None and self.returning != returning:
            return False
        if self.tags and not tags.intersection(self.tags):
            return False
        local = now.astimezone(SHANGHAI)
        day = local.date()
        window = self.window
        if window is not None:
            minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
            if not window.contains(minute):
                return False
            if window.overnight and minute < window.end:
                day -= dt.timedelta(days=1)  # after midnight: the evening that started yesterday
        weekdays = self.weekdays
        if weekdays is not None and day.weekday() not in weekdays:
            return False
        return not self.date_ranges or any(r.contains(day) for r in self.date_ranges)


class WelcomeRules(_Model):
    """The whole welcome.yaml."""

    brand: str = ""
    guides: dict[Text, Guide] = Field(default_factory=dict)
    default: Id
    scripts: tuple[Script, ...]
    rules: tuple[Rule, ...] = ()

    @functools.cached_property
    def by_id(self) -> Mapping[str, Script]:
        """Scripts by id."""
        return {s.id: s for s in self.scripts}


def load_rules(path: str | Path, library_dir: str | Path | None = None) -> WelcomeRules:
    """Read and validate welcome.yaml; media paths must exist under `library_dir` (default: its folder)."""
    path = Path(path)
    return load_rules_text(
        path.read_text(encoding="utf-8"), path.name, library_dir=library_dir or path.parent
    )


def load_rules_text(
    text: str, name: str = WELCOME_FILE, library_dir: str | Path | None = None
) -> WelcomeRules:
    """Validate welcome.yaml given as text; raises ContentErrors listing every problem."""
    try:
        loaded = yamlfile.load_text(text, name)
    except errors.ContentError as exc:  # YAML syntax
        raise errors.ContentErrors([exc]) from exc
    except ValueError as exc:  # PyYAML builds unquoted dates itself, and 2026-02-30 fails in there
        raise errors.ContentErrors([_bad_date(text, name, exc)]) from exc
    problems: list[errors.ContentError] = list(loaded.problems)
    data = loaded.data
    model: WelcomeRules | None = None
    if not isinstance(data, dict):
        problems.append(errors.ContentError(name, 1, "must be a mapping with scripts and default"))
    else:
        try:
            model = WelcomeRules.model_validate(data)
        except ValidationError as exc:
            problems += yamlfile.problems_from(exc, loaded)
        _cross_check(loaded, problems, Path(library_dir) if library_dir else None)
    if problems or model is None:
        raise errors.ContentErrors(sorted(problems, key=lambda p: (p.line or 0, p.reason)))
    return model


_YAML_DATE = re.compile(r"(?<![\d.])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d])")


def _bad_date(text: str, name: str, exc: ValueError) -> errors.ContentError:
    """The first impossible date in `text`, with its line."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _YAML_DATE.finditer(line):
            try:
                dt.date(*(int(g) for g in match.groups()))
            except ValueError:
                return errors.ContentError(name, number, f"bad date {match.group(0)!r}: use YYYY-MM-DD")
    return errors.ContentError(name, None, f"bad value: {exc}")


def _iso(value: Any) -> Any:
    # Unquoted dates arrive as dates; ranges (a..b) stay strings.
    return value.isoformat() if isinstance(value, dt.date) else value


def _cross_check(
    loaded: yamlfile.Loaded, problems: list[errors.ContentError], library_dir: Path | None
) -> None:
    """Script references, duplicate ids and media files, read from the raw data."""
    data, name = loaded.data, loaded.name

    def report(loc: tuple[Any, ...], reason: str) -> None:
        problems.append(errors.ContentError(name, loaded.line_of(loc), reason))

    scripts = data.get("scripts") if isinstance(data.get("scripts"), list) else []
    ids: dict[str, int | None] = {}
    for index, script in enumerate(scripts):
        if not isinstance(script, dict):
            continue
        script_id = script.get("id")
        if isinstance(script_id, str):
            if script_id in ids:
                report(
                    ("scripts", index, "id"),
                    f"duplicate script id {script_id!r} (first on line {ids[script_id]})",
                )
            else:
                ids[script_id] = loaded.line_of(("scripts", index, "id"))
        variants = script.get("variants") if isinstance(script.get("variants"), list) else []
        seen: set[str] = set()
        for v_index, variant in enumerate(variants):
            if not isinstance(variant, dict):
                continue
            if variant.get("id") in seen:
                report(
                    ("scripts", index, "variants", v_index, "id"),
                    f"duplicate variant id {variant.get('id')!r}",
                )
            seen.add(str(variant.get("id")))
            if library_dir is None:
                continue
            attachments = variant.get("attachments") if isinstance(variant.get("attachments"), list) else []
            for a_index, item in enumerate(attachments):
                for key in ("media_path", "pic_media_path"):
                    media = item.get(key) if isinstance(item, dict) else None
                    if isinstance(media, str) and not (library_dir / media).is_file():
                        loc = ("scripts", index, "variants", v_index, "attachments", a_index, key)
                        report(loc, f"media file {media!r} not found in the library")

    default = data.get("default")
    if isinstance(default, str) and default not in ids:
        report(("default",), f"unknown script {default!r}")
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    rule_ids: set[str] = set()
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        if rule.get("id") in rule_ids:
            report(("rules", index, "id"), f"duplicate rule id {rule.get('id')!r}")
        rule_ids.add(str(rule.get("id")))
        script = rule.get("script")
        if isinstance(script, str) and script not in ids:
            report(("rules", index, "script"), f"unknown script {script!r}")


@functools.lru_cache(maxsize=8)
def _parse_cached(text: str) -> WelcomeRules:
    return load_rules_text(text)


def rules_from_files(files: Mapping[str, str]) -> WelcomeRules | None:
    """The rules in a content snapshot's files (parsed once per text); None without welcome.yaml."""
    text = files.get(WELCOME_FILE)
    if text is None or not text.strip():
        return None
    # Media files are checked by `siyu content validate`; a snapshot may come from the database.
    try:
        rules = _parse_cached(text)
    except errors.ContentErrors:
        if _LAST_GOOD:
            # A bad edit keeps the last good rules serving; `siyu content validate` names the problem.
            return _LAST_GOOD[-1]
        raise
    _LAST_GOOD[:] = [rules]
    return rules


_LAST_GOOD: list[WelcomeRules] = []
