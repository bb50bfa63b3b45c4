"""Channel live codes (渠道活码, `content_library/channels.yaml`): models, loader and pure planning.

Each channel is one WeCom 「联系我」 QR code (§5.3) whose `state` tells the add-contact handlers
where a customer came from. Guides are a plain list or a weekly rota, each guide takes at most
`daily_cap` adds a day, and a `backup` guide takes over when nobody is left. `plan()` compares the
file with the stored codes and says what to add, update or delete; `bot/channel_sync.py` does it.

`load_channels(path)` raises `errors.ContentErrors` listing every problem as `file:line: reason`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bot import errors, yamlfile

__all__ = [
    "CHANNELS_FILE",
    "MAX_USERS",
    "WEEKDAYS",
    "Channel",
    "ChannelsFile",
    "Op",
    "StoredCode",
    "channel_for_state",
    "code_type",
    "load_channels",
    "load_channels_text",
    "plan",
    "spec_digest",
    "users_for",
    "way_digest",
]

CHANNELS_FILE = "channels.yaml"
MAX_USERS = 100
"""WeCom's cap on users of one contact way (41041)."""
SCENE_QR = 2
"""Scene 2: a QR code, so add_contact_way returns `qr_code` (scene 1 is a mini-program button)."""

WEEKDAYS: Mapping[str, int] = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{name: i for i, name in enumerate(("周一", "周二", "周三", "周四", "周五", "周六", "周日"))},
    "周天": 6,
}
"""Rota day names (English short or Chinese) -> Python weekday."""

_ID = re.compile(r"[a-z][a-z0-9_]*")
_TAG = re.compile(r"[^/\s]+/[^/\s]+")


def _snake_case(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"key {value!r} must be snake_case (a-z, 0-9, _; starting with a letter)")
    return value


def _tag_name(value: str) -> str:
    if not _TAG.fullmatch(value):
        raise ValueError(f"entry tag {value!r} must read `group/tag`")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Key = Annotated[str, StringConstraints(max_length=64), AfterValidator(_snake_case)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=30)]
UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Channel(BaseModel):
    """One channel and the QR code WeCom holds for it."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    key: Key
    name: Text
    state: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30)]
    guides: tuple[UserId, ...] | dict[str, tuple[UserId, ...]]
    daily_cap: Annotated[int, Field(ge=1)] | None = None
    backup: UserId | None = None
    entry_tags: tuple[Annotated[str, AfterValidator(_tag_name)], ...] = ()
    welcome: Text | None = None
    skip_verify: bool = True
    remark: Short = ""

    def on_rota(self, day: dt.date) -> tuple[str, ...]:
        """The guides listed for `day` (every day for a plain list)."""
        if not isinstance(self.guides, dict):
            return self.guides
        weekday = day.weekday()
        return tuple(u for name, users in self.guides.items() if WEEKDAYS.get(name) == weekday for u in users)

    def everyone(self) -> tuple[str, ...]:
        """Every guide the channel may ever hand a customer to, backup last."""
        lists = self.guides.values() if isinstance(self.guides, dict) else (self.guides,)
        seen = dict.fromkeys(u for users in lists for u in users)
        if self.backup:
            seen.setdefault(self.backup)
        return tuple(seen)


class ChannelsFile(BaseModel):
    """`channels.yaml`: the brand and its channels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brand: Text | None = None
    channels: tuple[Channel, ...] = ()


def channel_for_state(channels: Iterable[Channel], state: str) -> Channel | None:
    """The channel whose code carries `state` (an add event's State), if any."""
    return next((c for c in channels if c.state == state), None) if state else None


# -------------------------------------------------------------------------------------------- planning


def users_for(channel: Channel, day: dt.date, adds_today: Mapping[str, int]) -> tuple[str, ...]:
    """Who the code should hand customers to on `day`: the rota minus guides at cap, else the backup."""
    listed = channel.on_rota(day)
    cap = channel.daily_cap
    users = tuple(u for u in listed if cap is None or adds_today.get(u, 0) < cap)
    if users:
        return users
    if channel.backup:
        return (channel.backup,)
    # No backup and everyone at cap: a code cannot be empty (WeCom refuses it), and a customer
    # over the cap is better served than a QR code that stops working.
    return listed


def code_type(channel: Channel) -> int:
    """1 for a one-person channel, 2 when it may ever list several guides (type cannot change later)."""
    # The type follows the channel's whole configuration, not today's users: a two-guide code with
    # one guide at cap stays type 2, so the printed QR code survives the day's changes.
    return 1 if len(channel.everyone()) == 1 else 2


def spec_digest(channel: Channel, users: Sequence[str]) -> str:
    """`type:hash` over what WeCom stores for the code; equal digests mean nothing to update."""
    kind = code_type(channel)
    spec = {
        "type": kind,
        "scene": SCENE_QR,
        "state": channel.state,
        "remark": channel.remark,
        "skip_verify": channel.skip_verify,
        "users": list(users),
    }
    return _digest(spec)


def way_digest(way: Mapping[str, Any]) -> str:
    """spec_digest of a code as get_contact_way describes it (a code adopted from WeCom)."""
    spec = {
        "type": int(way.get("type") or 0),
        "scene": int(way.get("scene") or 0),
        "state": str(way.get("state") or ""),
        "remark": str(way.get("remark") or ""),
        "skip_verify": bool(way.get("skip_verify", True)),
        "users": [str(u) for u in way.get("user") or ()],
    }
    return _digest(spec)


def _digest(spec: Mapping[str, Any]) -> str:
    body = hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    # The type prefix lets plan() see an immutable type change without another WeCom call.
    return f"{spec['type']}:{body[:48]}"


class StoredCode(Protocol):
    """What plan() reads of a stored `ChannelCode` row."""

    key: str
    state: str
    config_id: str
    spec_digest: str


OpKind = Literal["add", "update", "replace", "delete", "unchanged"]


@dataclass(frozen=True)
class Op:
    """One step of a sync: `replace` is a delete and an add (the code type changed)."""

    kind: OpKind
    key: str
    channel: Channel | None = None
    users: tuple[str, ...] = ()
    digest: str = ""
    config_id: str = ""


def plan(
    channels: Sequence[Channel],
    stored: Mapping[str, StoredCode],
    day: dt.date,
    adds: Mapping[str, Mapping[str, int]],
) -> list[Op]:
    """What to do so WeCom matches the file on `day`; deletes come first so a state can move."""
    ops: list[Op] = []
    keys = {c.key for c in channels}
    for key in sorted(set(stored) - keys):
        ops.append(Op("delete", key, config_id=stored[key].config_id))
    for channel in channels:
        users = users_for(channel, day, adds.get(channel.key, {}))
        digest = spec_digest(channel, users)
        row = stored.get(channel.key)
        if row is None or not row.config_id:
            kind: OpKind = "add"
        elif row.spec_digest == digest:
            kind = "unchanged"
        elif row.spec_digest.split(":", 1)[0] != digest.split(":", 1)[0]:
            kind = "replace"
        else:
            kind = "update"
        ops.append(Op(kind, channel.key, channel, users, digest, row.config_id if row else ""))
    return ops


# -------------------------------------------------------------------------------------------- loading


def load_channels(path: str | Path, welcome_ids: Iterable[str] | None = None) -> tuple[Channel, ...]:
    """Load and validate a channels file; welcome.yaml next to it (if any) checks `welcome` ids."""
    path = Path(path)
    if not path.is_file():
        raise errors.ContentErrors([errors.ContentError(str(path), None, "channels file not found")])
    if welcome_ids is None:
        welcome_ids = welcome_script_ids(path.parent / "welcome.yaml")
    return load_channels_text(path.read_bytes().decode("utf-8"), str(path), welcome_ids)


def welcome_script_ids(path: Path) -> frozenset[str] | None:
    """Script ids in welcome.yaml (`scripts:` as a list of items with `id`, or a mapping); None: no check."""
    if not path.is_file():
        return None
    try:
        data = yamlfile.load(path).data
    except errors.ContentError:
        return None  # welcome.yaml reports its own problems; do not fail channels for them
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if isinstance(scripts, dict):
        return frozenset(str(k) for k in scripts)
    if isinstance(scripts, list):
        return frozenset(str(s["id"]) for s in scripts if isinstance(s, dict) and "id" in s)
    return None


def load_channels_text(
    text: str, name: str = CHANNELS_FILE, welcome_ids: Iterable[str] | None = None
) -> tuple[Channel, ...]:
    """Validate channels given as YAML text; errors are named `name`."""
    try:
        loaded = yamlfile.load_text(text, name)
    except errors.ContentError as exc:
        raise errors.ContentErrors([exc]) from exc
    problems = list(loaded.problems)
    model: ChannelsFile | None = None
    try:
        model = ChannelsFile.model_validate(loaded.data if loaded.data is not None else {})
    except ValidationError as exc:
        problems += yamlfile.problems_from(exc, loaded, skip=lambda loc: _union_noise(loc, loaded))
    # Cross-checks read the raw data so that they still report when a neighbouring channel is invalid.
    _check(loaded, problems, frozenset(welcome_ids) if welcome_ids is not None else None)
    if problems or model is None:
        unique = {(p.line, p.reason): p for p in problems}
        raise errors.ContentErrors(sorted(unique.values(), key=lambda e: e.line or 0))
    return model.channels


def _union_noise(loc: tuple[Any, ...], loaded: yamlfile.Loaded) -> bool:
    """True for the `guides` union member that does not match the shape ops wrote (list vs rota)."""
    if "guides" not in loc:
        return False
    at = loc.index("guides")
    raw = _raw(loaded.data, loc[: at + 1])
    member = str(loc[at + 1]) if len(loc) > at + 1 else ""
    return (isinstance(raw, dict) and member.startswith("tuple")) or (
        isinstance(raw, list) and member.startswith("dict")
    )


def _raw(data: Any, loc: Sequence[Any]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _check(
    loaded: yamlfile.Loaded, problems: list[errors.ContentError], welcome_ids: frozenset[str] | None
) -> None:
    """Duplicate keys and states, rota days, user counts, backup, welcome references."""
    data = loaded.data
    name = loaded.name

    def report(loc: tuple[Any, ...], reason: str) -> None:
        problems.append(errors.ContentError(name, loaded.line_of(loc), reason))

    items = data.get("channels") if isinstance(data, dict) else None
    seen: dict[str, dict[str, int | None]] = {"key": {}, "state": {}}
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            continue
        at = ("channels", index)
        for field in ("key", "state"):
            value = item.get(field)
            if not isinstance(value, str):
                continue
            value = value.strip()
            if field == "state" and len(value) > 30:
                continue  # pydantic reports the length
            if value in seen[field]:
                report((*at, field), f"duplicate {field} {value!r} (first on line {seen[field][value]})")
            else:
                seen[field][value] = loaded.line_of((*at, field))
        backup = item.get("backup")
        guides = item.get("guides")
        if isinstance(guides, list):
            _check_users(report, (*at, "guides"), guides)
            if not guides and not backup:
                report((*at, "guides"), "no guides and no backup: the code would have no one to add")
        elif isinstance(guides, dict):
            if not guides:
                report((*at, "guides"), "an empty rota needs a backup")
            days: dict[int, str] = {}
            for day, users in guides.items():
                loc = (*at, "guides", day)
                weekday = WEEKDAYS.get(str(day))
                if weekday is None:
                    report(loc, f"unknown weekday {day!r}; use mon..sun or 周一..周日")
                    continue
                if weekday in days:
                    report(loc, f"weekday {day!r} is listed already as {days[weekday]!r}")
                days[weekday] = str(day)
                if isinstance(users, list):
                    _check_users(report, loc, users)
                if not users and not backup:
                    report(loc, f"nobody on {day} and no backup guide")
            if len(days) < 7 and not backup and guides:
                missing = [d for d, i in WEEKDAYS.items() if i not in days and d.isascii()]
                report((*at, "guides"), f"rota misses {', '.join(missing)} and there is no backup guide")
        welcome = item.get("welcome")
        if welcome_ids is not None and welcome is not None and str(welcome) not in welcome_ids:
            report((*at, "welcome"), f"unknown welcome script {welcome!r}: not in welcome.yaml")


def _check_users(report: Any, loc: tuple[Any, ...], users: list[Any]) -> None:
    """At most 100 users on one code (41041), each listed once."""
    names = [str(u) for u in users]
    total = len(set(names))
    if total > MAX_USERS:
        report(loc, f"{total} users: a code holds at most {MAX_USERS} (WeCom 41041)")
    firsts: set[str] = set()
    for position, user in enumerate(names):
        if user in firsts:
            report((*loc, position), f"guide {user!r} is listed twice")
        firsts.add(user)
