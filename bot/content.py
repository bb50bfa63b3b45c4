"""The ops-edited content library: typed models, `file:line` validation, and the store that serves it.

Files (in `content.dir`, or published to the database with `siyu content publish`):

- `faq.yaml` (required): brand, kf texts, FAQ entries (questions, keywords, answer, attachments);
- `synonyms.yaml`: brand words for jieba's user dictionary, canonical word -> variants;
- `handoff.yaml`: phrases asking for a person, complaint words, human service hours, messages;
- `replies.yaml`: the guides' scripts (话术库) by category, optionally tied to an FAQ.

`load_library_from_texts` validates every file and reports every error as `file:line: reason`
(raising `ContentErrors`); the result is an immutable `ContentSnapshot`. `ContentStore` keeps the
last good snapshot: a bad edit is logged once per version and the previous snapshot keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot import errors, yamlfile
from bot.clock import SHANGHAI, Clock
from bot.config import Settings
from bot.reloading import keep_refreshing
from bot.store.db import Sessions
from bot.store.models import ContentVersion

_LOGGER = logging.getLogger(__name__)

FAQ_FILE = "faq.yaml"
SYNONYMS_FILE = "synonyms.yaml"
HANDOFF_FILE = "handoff.yaml"
REPLIES_FILE = "replies.yaml"
LIBRARY_FILES = (FAQ_FILE, SYNONYMS_FILE, HANDOFF_FILE, REPLIES_FILE)

VARIABLES = ("brand", "customer_name", "guide_name", "store")
"""Variables an answer, script or kf text may use, e.g. `{customer_name}`."""

Channel = Literal["kf", "guide"]
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_ID = re.compile(r"[a-z][a-z0-9_]*")


ContentErrors = errors.ContentErrors  # re-exported: callers catch content.ContentErrors


# ---------------------------------------------------------------------------------------------- text


def template_variables(text: str) -> list[str]:
    """The `{name}` placeholders in `text` (`{{` and `}}` are literal braces)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None]


def render(text: str, values: Mapping[str, str]) -> str:
    """`text` with its variables filled from `values` (a missing value renders empty)."""
    literals, names = _parsed(text)
    out = [literals[0]]
    for name, literal in zip(names, literals[1:], strict=True):
        out.append(str(values.get(name, "")))
        out.append(literal)
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`text` split into literal runs around its variables (a template is parsed once, sent often)."""
    literals: list[str] = []
    names: list[str] = []
    run: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        run.append(text[position : match.start()])
        position = match.end()
        if match.group(1) is None:
            run.append(match.group(0)[0])  # {{ or }}: a literal brace
            continue
        literals.append("".join(run))
        names.append(match.group(1))
        run = []
    run.append(text[position:])
    literals.append("".join(run))
    return tuple(literals), tuple(names)


def _template(*extra: str) -> Callable[[str], str]:
    allowed = (*VARIABLES, *extra)

    def check(text: str) -> str:
        unknown = [name for name in template_variables(text) if name not in allowed]
        if unknown:
            known = ", ".join("{" + name + "}" for name in sorted(allowed))
            raise ValueError(f"unknown variable {{{unknown[0]}}}; known: {known}")
        return text

    return check


def _snake_case(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"id {value!r} must be snake_case (a-z, 0-9, _; starting with a letter)")
    return value


def _at_least_one(what: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    # An after-validator, not min_length: pydantic would also call a list whose items all failed empty.
    def check(items: tuple[Any, ...]) -> tuple[Any, ...]:
        if not items:
            raise ValueError(f"needs at least one {what}")
        return items

    return check


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Template = Annotated[Text, AfterValidator(_template())]
Id = Annotated[str, AfterValidator(_snake_case)]


class _Model(BaseModel):
    # Numbers become strings: ops write `complaint_words: [投诉, 12315]` without quotes.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


def _web_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


Url = Annotated[Text, AfterValidator(_web_url)]


# ----------------------------------------------------------------------------------------------- faq


class ImageAttachment(_Model):
    """An image sent after the answer: a file in the library's media or a public URL."""

    type: Literal["image"]
    media_path: Text | None = None
    pic_url: Url | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageAttachment:
        if (self.media_path is None) == (self.pic_url is None):
            raise ValueError("an image needs exactly one of media_path or pic_url")
        return self


class LinkAttachment(_Model):
    """A link card (图文链接)."""

    type: Literal["link"]
    title: Text
    url: Url
    desc: str = ""
    picurl: Url | None = None


class MiniprogramAttachment(_Model):
    """A mini-program card; its cover image is uploaded from the library's media."""

    type: Literal["miniprogram"]
    title: Text
    appid: Text
    page: Text
    pic_media_path: Text


Attachment = Annotated[ImageAttachment | LinkAttachment | MiniprogramAttachment, Field(discriminator="type")]


class FaqEntry(_Model):
    """One question ops answer: ways customers ask it, keywords, the answer and where it may be used."""

    id: Id
    questions: Annotated[tuple[Text, ...], AfterValidator(_at_least_one("question"))]
    keywords: tuple[Text, ...] = ()
    answer: Template
    attachments: tuple[Attachment, ...] = ()
    channels: Literal["kf", "guide", "both"] = "both"
    enabled: bool = True
    category: Text | None = None

    def usable_in(self, channel: Channel) -> bool:
        """True when the entry is enabled and allowed in `channel`."""
        return self.enabled and self.channels in (channel, "both")


class KfTexts(_Model):
    """What the bot says in 微信客服 besides answers."""

    welcome: Template = "您好，这里是{brand}，有什么可以帮您？"
    menu_head: Template = "您是想问："
    menu_tail: Template = "回复数字即可"
    unsure: Template = "这个问题我暂时答不上来，已经帮您记下了，稍后会有同事回复您。"


class FaqLibrary(_Model):
    """`faq.yaml` (a superset of the public eval sample's format)."""

    brand: Text
    kf: KfTexts = KfTexts()
    faqs: Annotated[tuple[FaqEntry, ...], AfterValidator(_at_least_one("FAQ"))]
    _by_id: dict[str, FaqEntry] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        """Index entries by id."""
        self._by_id.update((entry.id, entry) for entry in self.faqs)

    def get(self, faq_id: str) -> FaqEntry | None:
        """The entry with `faq_id`, if any."""
        return self._by_id.get(faq_id)

    def usable(self, channel: Channel) -> list[FaqEntry]:
        """Enabled entries allowed in `channel`."""
        return [entry for entry in self.faqs if entry.usable_in(channel)]


# ------------------------------------------------------------------------------------------ synonyms


class Synonyms(_Model):
    """`synonyms.yaml`: brand words (jieba user dictionary) and canonical word -> variants."""

    brand_words: tuple[Text, ...] = ()
    synonyms: dict[Text, tuple[Text, ...]] = Field(default_factory=dict)

    def variants(self) -> dict[str, str]:
        """Every variant mapped to its canonical word, for query normalisation."""
        return {variant: canonical for canonical, group in self.synonyms.items() for variant in group}


# ------------------------------------------------------------------------------------------- handoff

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


def parse_days(spec: str) -> list[int]:
    """Weekday numbers (0 = Monday) of `mon`, `mon-fri`, `sat,sun`, `fri-mon` or `daily`."""
    spec = spec.strip().lower()
    if spec == "daily":
        return list(range(7))
    days: list[int] = []
    for part in spec.split(","):
        first, _, last = (p.strip() for p in part.partition("-"))
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"unknown days {spec!r}: use mon..sun, a range like mon-fri, or daily")
        start = WEEKDAYS.index(first)
        count = (WEEKDAYS.index(last) - start) % 7 + 1 if last else 1
        days.extend((start + i) % 7 for i in range(count))
    return days


def parse_range(text: str) -> tuple[int, int] | None:
    """`"09:00-21:00"` as (start, end) minutes of the day; `"closed"` as None."""
    text = text.strip()
    if text.lower() == "closed":
        return None
    match = _RANGE.fullmatch(text)
    if not match:
        raise ValueError(f"hours {text!r} must look like 09:00-21:00 (or closed)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"hours {text!r} is not a time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"hours {text!r} end before they start: overnight hours are not supported")
    return start, end


def _check_days(spec: str) -> str:
    parse_days(spec)
    return spec


def _check_range(text: str) -> str:
    parse_range(text)
    return text


class ServiceHours(_Model):
    """When people answer, Asia/Shanghai: `{mon-fri: "09:00-21:00", ..., holidays: [2026-10-01]}`."""

    days: dict[Annotated[str, AfterValidator(_check_days)], Annotated[str, AfterValidator(_check_range)]]
    holidays: tuple[dt.date, ...] = ()
    _week: tuple[tuple[int, int] | None, ...] = PrivateAttr(default=(None,) * 7)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, raw: Any) -> Any:
        # The YAML keeps day specs and `holidays` side by side; the model keeps them apart.
        if isinstance(raw, Mapping) and "days" not in raw:
            return {
                "days": {k: v for k, v in raw.items() if k != "holidays"},
                "holidays": raw.get("holidays") or (),
            }
        return raw

    @model_validator(mode="after")
    def _build_week(self) -> ServiceHours:
        week: list[tuple[int, int] | None] = [None] * 7
        given: dict[int, str] = {}
        for spec, text in self.days.items():
            for day in parse_days(spec):
                if day in given:
                    raise ValueError(f"{WEEKDAYS[day]} is covered twice ({given[day]} and {spec})")
                given[day] = spec
                week[day] = parse_range(text)
        self._week = tuple(week)
        return self

    def window(self, day: dt.date) -> tuple[int, int] | None:
        """(start, end) minutes people answer on `day`, or None (closed or a holiday)."""
        if day in self.holidays:
            return None
        return self._week[day.weekday()]


class HandoffMessages(_Model):
    """What the customer is told when a person takes over."""

    handoff: Template = "好的，正在为您转接人工客服，请稍等片刻～"
    outside_hours: Annotated[Text, AfterValidator(_template("next_open"))] = (
        "现在是非工作时间，人工客服{next_open}上线，您的问题我们已经记下，届时会第一时间回复您。"
    )
    busy: Template | None = None


def _default_hours() -> ServiceHours:
    return ServiceHours.model_validate({"daily": "09:00-21:00"})


class Handoff(_Model):
    """`handoff.yaml`: when and how the bot hands a customer to a person."""

    phrases: tuple[Text, ...] = ("转人工", "人工客服", "人工服务", "找真人", "真人客服")
    complaint_words: tuple[Text, ...] = ("投诉", "差评", "12315", "举报")
    hours: ServiceHours = Field(default_factory=_default_hours)
    messages: HandoffMessages = HandoffMessages()


def is_open(hours: ServiceHours, now: dt.datetime) -> bool:
    """True when people answer at `now` (any aware time; judged in Asia/Shanghai)."""
    local = now.astimezone(SHANGHAI)
    window = hours.window(local.date())
    if window is None:
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return window[0] * 60 <= seconds < window[1] * 60


def next_open(hours: ServiceHours, now: dt.datetime, *, horizon_days: int = 400) -> dt.datetime | None:
    """`now` when open, else when people next answer (Asia/Shanghai); None if never within the horizon."""
    local = now.astimezone(SHANGHAI)
    if is_open(hours, local):
        return local
    for offset in range(horizon_days):
        day = local.date() + dt.timedelta(days=offset)
        window = hours.window(day)
        if window is None:
            continue
        opens = dt.datetime.combine(day, dt.time(), SHANGHAI) + dt.timedelta(minutes=window[0])
        if opens > local:
            return opens
    return None


def format_next_open(when: dt.datetime, now: dt.datetime) -> str:
    """`when` as a customer reads it: 今天 / 明天 / 后天 / 周三 09:00, or 10月8日 09:00."""
    when, now = when.astimezone(SHANGHAI), now.astimezone(SHANGHAI)
    days = (when.date() - now.date()).days
    clock = f"{when:%H:%M}"
    if days in (0, 1, 2):
        return f"{('今天', '明天', '后天')[days]} {clock}"
    if days < 7:
        return f"{_WEEKDAYS_ZH[when.weekday()]} {clock}"
    return f"{when.month}月{when.day}日 {clock}"


# ------------------------------------------------------------------------------------------- replies


class Script(_Model):
    """One script a guide can send, optionally tied to the FAQ it answers."""

    id: Id
    title: Text
    text: Template
    faq_ref: Id | None = None


class ReplyCategory(_Model):
    """A named group of scripts."""

    name: Text
    scripts: Annotated[tuple[Script, ...], AfterValidator(_at_least_one("script"))]


class Replies(_Model):
    """`replies.yaml`: the guides' 话术库."""

    categories: tuple[ReplyCategory, ...] = ()

    def scripts(self) -> list[Script]:
        """Every script, in file order."""
        return [script for category in self.categories for script in category.scripts]

    @functools.cached_property
    def by_id(self) -> dict[str, Script]:
        """Scripts by id (playbook steps look theirs up for every send)."""
        return {script.id: script for script in self.scripts()}


# ------------------------------------------------------------------------------------------ snapshot


@dataclasses.dataclass(frozen=True, eq=False)
class ContentSnapshot:
    """One valid version of the library; never changes (a reload builds a new one)."""

    faq: FaqLibrary
    synonyms: Synonyms
    handoff: Handoff
    replies: Replies
    digest: str
    files: Mapping[str, str]
    index: object | None = None


_MODELS: dict[str, type[_Model]] = {
    FAQ_FILE: FaqLibrary,
    SYNONYMS_FILE: Synonyms,
    HANDOFF_FILE: Handoff,
    REPLIES_FILE: Replies,
}


def digest_files(files: Mapping[str, str]) -> str:
    """sha256 over the files' names and UTF-8 bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name].encode("utf-8")
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def read_library_files(directory: str | Path) -> dict[str, str]:
    """The library's `*.yaml` files (top level of `directory`) by name; {} when it does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    files: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            files[path.name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContentErrors(
                [errors.ContentError(path.name, None, f"not UTF-8 text ({exc.reason})")]
            ) from exc
    return files


def load_library(directory: str | Path) -> ContentSnapshot:
    """Load and validate the library in `directory`; raises ContentErrors listing every error."""
    if not Path(directory).is_dir():
        raise ContentErrors([errors.ContentError(str(directory), None, "content directory does not exist")])
    return load_library_from_texts(read_library_files(directory))


def load_faq_file(path: str | Path) -> FaqLibrary:
    """One FAQ file on its own (e.g. the eval sample); raises ContentErrors."""
    path = Path(path)
    problems: list[errors.ContentError] = []
    loaded = _parse(path.name, path.read_bytes().decode("utf-8"), problems)
    model = _validate(FaqLibrary, loaded, problems) if loaded else None
    if loaded:
        _check_faq_ids(loaded, problems)
    if problems or not isinstance(model, FaqLibrary):
        raise ContentErrors(_sorted(problems))
    return model


def load_library_from_texts(files: Mapping[str, str]) -> ContentSnapshot:
    """Validate the library given as {file name: text}; raises ContentErrors listing every error."""
    problems: list[errors.ContentError] = []
    loaded: dict[str, yamlfile.Loaded] = {}
    models: dict[str, _Model | None] = {}
    for name, model_type in _MODELS.items():
        text = files.get(name)
        if text is None:
            if name == FAQ_FILE:
                problems.append(errors.ContentError(name, None, "required file is missing"))
            else:
                models[name] = model_type()
            continue
        parsed = _parse(name, text, problems)
        if parsed is None:
            continue
        if parsed.data is None and name != FAQ_FILE:
            parsed = dataclasses.replace(parsed, data={})  # an empty optional file means defaults
        loaded[name] = parsed
        models[name] = _validate(model_type, parsed, problems)

    # Cross-checks read the raw data, so they still report when a neighbouring entry is invalid.
    faq_ids: set[str] | None = None
    if FAQ_FILE in loaded:
        faq_ids = _check_faq_ids(loaded[FAQ_FILE], problems)
    if SYNONYMS_FILE in loaded:
        _check_synonyms(loaded[SYNONYMS_FILE], problems)
    if REPLIES_FILE in loaded:
        _check_replies(loaded[REPLIES_FILE], faq_ids, problems)

    if problems:
        raise ContentErrors(_sorted(problems))
    faq, synonyms, handoff, replies = (models[name] for name in LIBRARY_FILES)
    assert isinstance(faq, FaqLibrary) and isinstance(synonyms, Synonyms)
    assert isinstance(handoff, Handoff) and isinstance(replies, Replies)
    return ContentSnapshot(
        faq=faq,
        synonyms=synonyms,
        handoff=handoff,
        replies=replies,
        digest=digest_files(files),
        files=MappingProxyType(dict(files)),
    )


def _parse(name: str, text: str, problems: list[errors.ContentError]) -> yamlfile.Loaded | None:
    try:
        loaded = yamlfile.load_text(text, name)
    except errors.ContentError as exc:
        problems.append(exc)
        return None
    problems.extend(loaded.problems)
    return loaded


def _validate(
    model_type: type[_Model], loaded: yamlfile.Loaded, problems: list[errors.ContentError]
) -> _Model | None:
    try:
        return model_type.model_validate(loaded.data)
    except ValidationError as exc:
        problems += yamlfile.problems_from(exc, loaded, union_tags=_UNION_TAGS)
        return None


_UNION_TAGS = frozenset(("image", "link", "miniprogram"))


def _sorted(problems: list[errors.ContentError]) -> list[errors.ContentError]:
    order = {name: i for i, name in enumerate(LIBRARY_FILES)}
    return sorted(problems, key=lambda e: (order.get(e.file, len(order)), e.file, e.line or 0))


def _items(loaded: yamlfile.Loaded, key: str) -> list[tuple[int, Any]]:
    data = loaded.data
    value = data.get(key) if isinstance(data, dict) else None
    return list(enumerate(value)) if isinstance(value, list) else []


def _check_faq_ids(loaded: yamlfile.Loaded, problems: list[errors.ContentError]) -> set[str]:
    first_line: dict[str, int | None] = {}
    for index, entry in _items(loaded, "faqs"):
        faq_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(faq_id, str):
            continue
        line = loaded.line_of(("faqs", index, "id"))
        if faq_id in first_line:
            problems.append(
                errors.ContentError(
                    loaded.name, line, f"duplicate FAQ id {faq_id!r} (first on line {first_line[faq_id]})"
                )
            )
        else:
            first_line[faq_id] = line
    return set(first_line)


def _check_synonyms(loaded: yamlfile.Loaded, problems: list[errors.ContentError]) -> None:
    groups = loaded.data.get("synonyms") if isinstance(loaded.data, dict) else None
    if not isinstance(groups, dict):
        return
    owner: dict[str, tuple[str, int | None]] = {}
    canonicals = {str(c) for c in groups}
    for canonical, variants in groups.items():
        if not isinstance(variants, list):
            continue
        for index, variant in enumerate(variants):
            variant = str(variant)
            line = loaded.line_of(("synonyms", canonical, index))
            if variant in canonicals and variant != str(canonical):
                problems.append(
                    errors.ContentError(
                        loaded.name, line, f"variant {variant!r} of {canonical!r} is itself a canonical word"
                    )
                )
            elif variant in owner and owner[variant][0] != str(canonical):
                other, other_line = owner[variant]
                problems.append(
                    errors.ContentError(
                        loaded.name,
                        line,
                        f"variant {variant!r} of {canonical!r} is already a variant of {other!r}"
                        f" (line {other_line})",
                    )
                )
            else:
                owner.setdefault(variant, (str(canonical), line))


def _check_replies(
    loaded: yamlfile.Loaded, faq_ids: set[str] | None, problems: list[errors.ContentError]
) -> None:
    seen_scripts: dict[str, int | None] = {}
    seen_categories: dict[str, int | None] = {}
    for c_index, category in _items(loaded, "categories"):
        if not isinstance(category, dict):
            continue
        name = category.get("name")
        if isinstance(name, str):
            line = loaded.line_of(("categories", c_index, "name"))
            if name in seen_categories:
                problems.append(
                    errors.ContentError(
                        loaded.name,
                        line,
                        f"duplicate category {name!r} (first on line {seen_categories[name]})",
                    )
                )
            seen_categories.setdefault(name, line)
        scripts = category.get("scripts")
        for s_index, script in enumerate(scripts if isinstance(scripts, list) else []):
            if not isinstance(script, dict):
                continue
            path = ("categories", c_index, "scripts", s_index)
            script_id = script.get("id")
            if isinstance(script_id, str):
                line = loaded.line_of((*path, "id"))
                if script_id in seen_scripts:
                    problems.append(
                        errors.ContentError(
                            loaded.name,
                            line,
                            f"duplicate script id {script_id!r} (first on line {seen_scripts[script_id]})",
                        )
                    )
                seen_scripts.setdefault(script_id, line)
            ref = script.get("faq_ref")
            # Without a parsed faq.yaml nothing can be resolved; its own error is already reported.
            if isinstance(ref, str) and faq_ids is not None and ref not in faq_ids:
                problems.append(
                    errors.ContentError(
                        loaded.name,
                        loaded.line_of((*path, "faq_ref")),
                        f"faq_ref {ref!r} is not an FAQ id in faq.yaml",
                    )
                )


# --------------------------------------------------------------------------------------------- store

IndexBuilder = Callable[[ContentSnapshot], object]


class ContentStore:
    """Serves the last good snapshot from files or the database, and swaps in valid changes."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        sessions: Sessions | None = None,
        index_builder: IndexBuilder | None = None,
    ) -> None:
        self._settings = settings.content
        self._clock = clock
        self._sessions = sessions
        self._index_builder = index_builder
        self._current: ContentSnapshot | None = None
        self._rejected: set[str] = set()
        self._refreshing = asyncio.Lock()
        if self._settings.source == "database" and sessions is None:
            raise errors.ConfigError("content.source is database but no database sessions were given")

    @property
    def directory(self) -> Path:
        """The library directory (relative paths are taken from the working directory)."""
        return Path(self._settings.dir)

    @property
    def current(self) -> ContentSnapshot:
        """The last good snapshot."""
        if self._current is None:
            raise RuntimeError("ContentStore.start() has not run")
        return self._current

    async def start(self) -> ContentSnapshot:
        """Load the library; raises ContentErrors so the service refuses to serve invalid content."""
        latest = await self._latest()
        if latest is None:
            raise ContentErrors(
                [
                    errors.ContentError(
                        "content_versions", None, "nothing published yet: run `siyu content publish`"
                    )
                ]
            )
        snapshot = await self._build(await latest[1]())
        self._current = snapshot
        _LOGGER.info(
            "content loaded from %s: digest=%s faqs=%d",
            self._settings.source,
            snapshot.digest[:12],
            len(snapshot.faq.faqs),
        )
        return snapshot

    async def refresh(self) -> bool:
        """Swap in a changed, valid library; True when the served snapshot changed."""
        async with self._refreshing:
            current = self.current
            latest = await self._latest()
            if latest is None:
                return False
            digest, fetch = latest
            if digest == current.digest or digest in self._rejected:
                return False
            files = await fetch()
            try:
                snapshot = await self._build(files)
            except ContentErrors as exc:
                self._rejected.add(digest)
                _LOGGER.warning(
                    "content %s rejected, still serving %s: %d error(s)\n%s",
                    digest[:12],
                    current.digest[:12],
                    len(exc.errors),
                    "\n".join(str(e) for e in exc.errors),
                )
                return False
            except Exception:
                self._rejected.add(digest)
                _LOGGER.exception(
                    "content %s: index build failed, still serving %s", digest[:12], current.digest[:12]
                )
                return False
            self._current = snapshot
            # A version rejected earlier may come back later; warn about it again then.
            self._rejected.clear()
            _LOGGER.info(
                "content reloaded: digest=%s (was %s) faqs=%d",
                snapshot.digest[:12],
                current.digest[:12],
                len(snapshot.faq.faqs),
            )
            return True

    async def run(self, stopping: asyncio.Event) -> None:
        """Call refresh() every reload_interval_seconds until `stopping` is set."""
        await keep_refreshing(
            stopping,
            self._settings.reload_interval_seconds,
            self.refresh,
            "content",
            lambda: self.current.digest[:12],
        )

    async def publish(
        self, sessions: Sessions, directory: str | Path, published_by: str
    ) -> ContentVersion | None:
        """Validate `directory` and store it as the newest version (see `publish`)."""
        return await publish(sessions, directory, published_by, clock=self._clock)

    async def _build(self, files: Mapping[str, str]) -> ContentSnapshot:
        # YAML parsing and index building are CPU work that grows with the library: off the loop.
        snapshot = await asyncio.to_thread(load_library_from_texts, files)
        if self._index_builder is not None:
            index = await asyncio.to_thread(self._index_builder, snapshot)
            snapshot = dataclasses.replace(snapshot, index=index)
        return snapshot

    async def _latest(self) -> tuple[str, Callable[[], Awaitable[Mapping[str, str]]]] | None:
        """(digest, async fetcher of its files) of the newest version; None when there is none."""
        if self._settings.source == "files":
            files = await asyncio.to_thread(read_library_files, self.directory)
            if not files and not self.directory.is_dir():
                raise ContentErrors(
                    [errors.ContentError(str(self.directory), None, "content directory does not exist")]
                )

            async def read() -> Mapping[str, str]:
                return files

            return digest_files(files), read
        assert self._sessions is not None
        sessions = self._sessions
        async with sessions() as session:
            row = (
                await session.execute(
                    select(ContentVersion.id, ContentVersion.digest)
                    .order_by(ContentVersion.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        version_id = row.id

        async def fetch() -> Mapping[str, str]:
            async with sessions() as session:
                files = (
                    await session.execute(select(ContentVersion.files).where(ContentVersion.id == version_id))
                ).scalar_one()
            return {str(k): str(v) for k, v in files.items()}

        return row.digest, fetch


async def publish(
    sessions: Sessions, directory: str | Path, published_by: str, *, clock: Clock
) -> ContentVersion | None:
    """Validate `directory` and store it as the newest ContentVersion; None when it already is.

    Publishing an older version again makes it the newest (a rollback): its row is re-inserted.
    Raises ContentErrors when the library is invalid.
    """
    snapshot = await asyncio.to_thread(load_library, directory)
    try:
        async with sessions() as session, session.begin():
            newest = (
                await session.execute(select(ContentVersion).order_by(ContentVersion.id.desc()).limit(1))
            ).scalar_one_or_none()
            if newest is not None and newest.digest == snapshot.digest:
                return None
            older = (
                await session.execute(select(ContentVersion).where(ContentVersion.digest == snapshot.digest))
            ).scalar_one_or_none()
            if older is not None:
                await session.delete(older)
                await session.flush()
            row = ContentVersion(
                digest=snapshot.digest,
                files=dict(snapshot.files),
                published_by=published_by,
                published_at=clock.timestamp(),
            )
            session.add(row)
    except IntegrityError:
        # Another publisher stored the same digest at the same moment: it is published.
        return None
    return row
