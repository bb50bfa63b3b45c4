"""Channel live codes: users_for (rota, caps, backup), plan (each op kind), YAML errors with lines."""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot import errors
from bot.channel_sync import next_sync_at, on_channels_sync_timer, schedule_next_sync
from bot.channels import (
    Channel,
    channel_for_state,
    code_type,
    load_channels,
    load_channels_text,
    plan,
    spec_digest,
    users_for,
    way_digest,
)
from bot.clock import SHANGHAI

ROOT = Path(__file__).resolve().parents[2]
MONDAY = dt.date(2026, 11, 23)
SATURDAY = dt.date(2026, 11, 28)


def channel(**fields: object) -> Channel:
    base: dict[str, object] = {"key": "store", "name": "静安店", "state": "store_jingan", "guides": ["a"]}
    return Channel.model_validate({**base, **fields})


ROTA = {"mon": ["a", "b"], "sat": ["c"], "周日": []}


@pytest.mark.parametrize(
    ("fields", "day", "adds", "expected"),
    [
        ({"guides": ["a", "b"]}, MONDAY, {}, ("a", "b")),
        ({"guides": ["a", "b"], "daily_cap": 3}, MONDAY, {"a": 2}, ("a", "b")),
        ({"guides": ["a", "b"], "daily_cap": 3}, MONDAY, {"a": 3}, ("b",)),
        ({"guides": ["a", "b"], "daily_cap": 3, "backup": "z"}, MONDAY, {"a": 3, "b": 4}, ("z",)),
        # Nobody left and no backup: the listed guides stay, a code cannot be empty.
        ({"guides": ["a", "b"], "daily_cap": 3}, MONDAY, {"a": 3, "b": 3}, ("a", "b")),
        ({"guides": ["a"], "daily_cap": 1}, MONDAY, {"b": 9}, ("a",)),
        ({"guides": ROTA, "backup": "z"}, MONDAY, {}, ("a", "b")),
        ({"guides": ROTA, "backup": "z"}, SATURDAY, {}, ("c",)),
        ({"guides": ROTA, "backup": "z"}, SATURDAY + dt.timedelta(days=1), {}, ("z",)),  # empty 周日
        ({"guides": ROTA, "backup": "z"}, MONDAY + dt.timedelta(days=1), {}, ("z",)),  # not on the rota
        ({"guides": ROTA, "backup": "z", "daily_cap": 5}, SATURDAY, {"c": 5}, ("z",)),
    ],
)
def test_users_for(fields: dict[str, object], day: dt.date, adds: dict[str, int], expected: tuple) -> None:
    assert users_for(channel(**fields), day, adds) == expected


def test_code_type_follows_the_whole_configuration() -> None:
    assert code_type(channel(guides=["a"])) == 1
    assert code_type(channel(guides=["a"], backup="a")) == 1
    assert code_type(channel(guides=["a"], backup="z")) == 2
    assert code_type(channel(guides={"mon": ["a"], "tue": ["b"]}, backup="a")) == 2


@dataclass
class Row:
    key: str
    state: str
    config_id: str
    spec_digest: str


def stored(ch: Channel, users: tuple[str, ...], config_id: str = "cfg") -> Row:
    return Row(ch.key, ch.state, config_id, spec_digest(ch, users))


def test_plan_add_unchanged_update_replace_delete() -> None:
    new = channel(key="new", state="s_new")
    same = channel(key="same", state="s_same", guides=["a", "b"])
    moved = channel(key="moved", state="s_moved", guides=["a", "b"])
    single = channel(key="single", state="s_single", guides=["a", "b"])
    rows = {
        "same": stored(same, ("a", "b"), "c1"),
        "moved": stored(moved, ("a", "c"), "c2"),
        "single": stored(channel(key="single", state="s_single"), ("a",), "c3"),  # was type 1
        "gone": Row("gone", "s_gone", "c4", "2:x"),
        "never_added": Row("never_added", "s_na", "", ""),
    }
    never = channel(key="never_added", state="s_na")
    ops = plan([new, same, moved, single, never], rows, MONDAY, {})
    assert [(op.kind, op.key, op.config_id) for op in ops] == [
        ("delete", "gone", "c4"),
        ("add", "new", ""),
        ("unchanged", "same", "c1"),
        ("update", "moved", "c2"),
        ("replace", "single", "c3"),
        ("add", "never_added", ""),
    ]


def test_plan_guide_at_cap_updates_the_code() -> None:
    ch = channel(guides=["a", "b"], daily_cap=2)
    rows = {"store": stored(ch, ("a", "b"))}
    assert plan([ch], rows, MONDAY, {"store": {"a": 1}})[0].kind == "unchanged"
    op = plan([ch], rows, MONDAY, {"store": {"a": 2}})[0]
    assert (op.kind, op.users) == ("update", ("b",))


@pytest.mark.parametrize(
    "field",
    [{"state": "other"}, {"remark": "新备注"}, {"skip_verify": False}, {"guides": ["b", "a"]}],
)
def test_digest_covers_what_wecom_stores(field: dict[str, object]) -> None:
    before = channel(guides=["a", "b"])
    after = channel(**{"guides": ["a", "b"], **field})
    assert spec_digest(before, users_for(before, MONDAY, {})) != spec_digest(
        after, users_for(after, MONDAY, {})
    )
    # Fields WeCom does not store (name, entry tags, welcome) do not cause an update.
    renamed = channel(guides=["a", "b"], name="别名", entry_tags=["渠道/门店"], welcome="standard")
    assert spec_digest(before, ("a", "b")) == spec_digest(renamed, ("a", "b"))


def test_way_digest_reads_get_contact_way_as_spec_digest_reads_the_channel() -> None:
    ch = channel(guides=["a", "b"], remark="门店")
    way = {"config_id": "c1", "type": 2, "scene": 2, "state": "store_jingan", "remark": "门店"}
    way |= {"skip_verify": True, "user": ["a", "b"], "party": [], "qr_code": "https://q"}
    assert way_digest(way) == spec_digest(ch, ("a", "b"))  # an adopted code that matches: unchanged
    assert way_digest({**way, "user": ["a"]}) == spec_digest(ch, ("a",))
    assert way_digest({**way, "scene": 1}) != spec_digest(ch, ("a", "b"))
    assert way_digest({**way, "type": 1}).startswith("1:")  # the type prefix still tells a replace


def test_channel_for_state() -> None:
    chs = [channel(), channel(key="live", state="live_room")]
    assert channel_for_state(chs, "live_room") is chs[1]
    assert channel_for_state(chs, "nope") is None
    assert channel_for_state(chs, "") is None


def test_sample_file_loads_and_references_welcome_scripts() -> None:
    channels = load_channels(ROOT / "content_library/channels.yaml")
    assert len(channels) >= 6
    assert len({c.state for c in channels}) == len(channels)


BAD = textwrap.dedent(
    """\
    channels:
      - key: one
        name: 一
        state: this_state_is_far_too_long_for_wecom
        guides: [a]
      - key: two
        name: 二
        state: dup
        guides: [a, a]
      - key: three
        name: 三
        state: dup
        guides:
          mon: [a]
          funday: [b]
          tue: []
      - key: one
        name: 四
        state: four
        guides: [a]
        remark: 这是一个非常非常非常非常非常非常非常非常非常非常长的备注超过三十个字符了吧
        welcome: nope
        entry_tags: [no_slash]
    """
)


def test_validation_errors_carry_lines() -> None:
    with pytest.raises(errors.ContentErrors) as caught:
        load_channels_text(BAD, "channels.yaml", welcome_ids={"standard"})
    found = [(e.line, e.reason) for e in caught.value.errors]
    text = "\n".join(f"{line}: {reason}" for line, reason in found)
    expected = [
        (4, "at most 30 characters"),
        (9, "guide 'a' is listed twice"),
        (12, "duplicate state 'dup' (first on line 8)"),
        (13, "rota misses"),
        (15, "unknown weekday 'funday'"),
        (16, "nobody on tue and no backup guide"),
        (17, "duplicate key 'one' (first on line 2)"),
        (21, "at most 30 characters"),
        (22, "unknown welcome script 'nope'"),
        (23, "must read `group/tag`"),
    ]
    for line, fragment in expected:
        assert any(ln == line and fragment in reason for ln, reason in found), (line, fragment, text)
    assert all(str(e).startswith("channels.yaml:") for e in caught.value.errors)


def test_too_many_users() -> None:
    guides = ", ".join(f"g{i}" for i in range(101))
    text = f"channels:\n  - key: big\n    name: 大\n    state: big\n    guides: [{guides}]\n"
    with pytest.raises(errors.ContentErrors) as caught:
        load_channels_text(text)
    assert [(e.line, "101 users" in e.reason) for e in caught.value.errors] == [(5, True)]


def test_welcome_check_skipped_without_welcome_file() -> None:
    text = "channels:\n  - key: a\n    name: A\n    state: a\n    guides: [x]\n    welcome: anything\n"
    assert load_channels_text(text)[0].welcome == "anything"


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(errors.ContentErrors) as caught:
        load_channels_text("channels:\n  - key: [a\n", "c.yaml")
    assert caught.value.errors[0].line is not None


_SETTINGS = SimpleNamespace(
    channels=SimpleNamespace(daily_sync_at="00:05"), content=SimpleNamespace(dir="content_library")
)


def test_next_sync_and_timer() -> None:
    at = dt.datetime(2026, 11, 22, 0, 4, tzinfo=SHANGHAI)
    assert next_sync_at(at, "00:05") == dt.datetime(2026, 11, 22, 0, 5, tzinfo=SHANGHAI)
    assert next_sync_at(at.replace(minute=5), "00:05") == dt.datetime(2026, 11, 23, 0, 5, tzinfo=SHANGHAI)
    schedule = schedule_next_sync(dt.datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI), _SETTINGS)
    assert (schedule.key, schedule.kind, schedule.payload) == (
        "channels_sync:2026-11-23",
        "channels_sync",
        {"day": "2026-11-23"},
    )

    @dataclass
    class Timer:
        payload: dict

    @dataclass
    class Deps:
        settings: object
        clock: object = None

    (action,) = on_channels_sync_timer(Timer({"day": "2026-11-23"}), Deps(_SETTINGS))
    assert (action.day, action.path, action.sync_at) == (
        "2026-11-23",
        str(Path("content_library") / "channels.yaml"),
        "00:05",
    )
    assert action.idem_key == "channels:2026-11-23"
