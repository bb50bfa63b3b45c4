"""Welcome rules: loader errors with file:line; rule tables (time edges, holidays, returning); A/B."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from bot import errors, events
from bot.clock import SHANGHAI
from bot.deps import WelcomeHistory
from bot.welcome_rules import load_rules, load_rules_text, parse_window
from handlers.welcome import fill, pick_variant, pick_welcome, wecom_attachment

LIBRARY = Path(__file__).resolve().parents[2] / "content_library"

BASE = """\
brand: 小禾母婴
guides:
  xiaolin: {name: 小林, store: 徐汇旗舰店, department: 上海门店}
  wangqiang: {name: 王强, store: 线上商城, department: 电商}
default: standard
rules:
  - id: back
    returning: true
    script: back
  - id: holiday
    dates: [2026-10-01..2026-10-07, 2026-12-25]
    script: holiday
  - id: night
    time: 21:00-08:00
    script: night
  - id: weekend_noon
    days: sat,sun
    time: 11:00-14:00
    script: weekend
  - id: vip
    tags: [VIP]
    script: vip
  - id: live
    states: [live_room]
    script: live
  - id: online
    departments: [电商]
    script: online
scripts:
  - id: standard
    variants:
      - {id: a, weight: 3, text: "{customer_name}您好，我是{store}的{guide_name}"}
      - {id: b, weight: 1, text: "欢迎来到{brand}"}
  - {id: back, variants: [{id: a, text: 欢迎回来}]}
  - {id: holiday, variants: [{id: a, text: 节日快乐}]}
  - {id: night, variants: [{id: a, text: 晚上好}]}
  - {id: weekend, variants: [{id: a, text: 周末好}]}
  - {id: vip, variants: [{id: a, text: 尊敬的会员}]}
  - {id: live, variants: [{id: a, text: 直播间来的朋友}]}
  - {id: online, variants: [{id: a, text: 线上商城}]}
"""

RULES = load_rules_text(BASE)


def add(userid: str = "xiaolin", state: str = "", external_userid: str = "wmCUST1") -> events.ContactAdded:
    return events.ContactAdded(
        app="contact",
        route_key=events.RouteKey("event", "change_external_contact", "add_external_contact"),
        dedup_key=f"add:{external_userid}:{userid}",
        userid=userid,
        external_userid=external_userid,
        state=state,
        welcome_code="CODE",
    )


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# 2026-11-21 is a Saturday, 2026-11-23 a Monday.
@pytest.mark.parametrize(
    ("when", "script"),
    [
        ("2026-11-23 10:00", "standard"),
        ("2026-11-23 20:59:59", "standard"),
        ("2026-11-23 21:00", "night"),  # start inclusive
        ("2026-11-23 23:59:59", "night"),
        ("2026-11-24 00:00", "night"),  # across midnight
        ("2026-11-24 07:59:59", "night"),
        ("2026-11-24 08:00", "standard"),  # end exclusive
        ("2026-11-21 10:59:59", "standard"),
        ("2026-11-21 11:00", "weekend"),
        ("2026-11-22 13:59", "weekend"),
        ("2026-11-22 14:00", "standard"),
        ("2026-11-24 11:00", "standard"),  # a weekday
        ("2026-10-01 00:00", "holiday"),  # the first day of the range, before the night rule
        ("2026-10-07 23:59:59", "holiday"),
        ("2026-10-08 10:00", "standard"),
        ("2026-12-25 12:00", "holiday"),  # a single day
        ("2026-12-26 03:00", "night"),  # the night after the holiday is not the holiday
        ("2026-09-30 23:00", "night"),
    ],
)
def test_time_windows_and_dates(when: str, script: str) -> None:
    pick = pick_welcome(add(), RULES, WelcomeHistory(), at(when))
    assert pick.script.id == script


def test_after_midnight_belongs_to_the_day_the_window_started() -> None:
    rules = load_rules_text(
        BASE.replace(
            "  - id: night\n    time: 21:00-08:00", "  - id: night\n    days: sat\n    time: 21:00-08:00"
        )
    )
    assert pick_welcome(add(), rules, WelcomeHistory(), at("2026-11-21 21:00")).script.id == "night"
    assert pick_welcome(add(), rules, WelcomeHistory(), at("2026-11-22 07:59")).script.id == "night"  # Sun
    assert pick_welcome(add(), rules, WelcomeHistory(), at("2026-11-21 07:59")).script.id == "standard"
    assert pick_welcome(add(), rules, WelcomeHistory(), at("2026-11-22 21:00")).script.id == "standard"


@pytest.mark.parametrize(
    ("history", "userid", "state", "script"),
    [
        (WelcomeHistory(returning=True), "xiaolin", "", "back"),
        (WelcomeHistory(frozenset({"VIP"}), returning=True), "xiaolin", "", "back"),  # first match wins
        (WelcomeHistory(frozenset({"VIP"})), "xiaolin", "", "vip"),
        (WelcomeHistory(frozenset({"奶粉"})), "xiaolin", "", "standard"),
        (WelcomeHistory(), "xiaolin", "live_room", "live"),
        (WelcomeHistory(), "xiaolin", "store_12", "standard"),
        (WelcomeHistory(), "wangqiang", "", "online"),
        (WelcomeHistory(), "unknown_guide", "", "standard"),
    ],
)
def test_returning_tags_channel_and_department(
    history: WelcomeHistory, userid: str, state: str, script: str
) -> None:
    pick = pick_welcome(add(userid, state), RULES, history, at("2026-11-23 10:00"))
    assert pick.script.id == script


def test_variant_is_sticky_per_customer_and_follows_the_weights() -> None:
    script = RULES.by_id["standard"]
    first = [pick_variant(script, f"wm{i:05d}").id for i in range(4000)]
    assert first == [pick_variant(script, f"wm{i:05d}").id for i in range(4000)]
    share = Counter(first)["a"] / len(first)
    assert 0.72 < share < 0.78  # weights 3:1
    # The same customer may land differently in another script (the hash includes the script id).
    assert (
        pick_welcome(add(), RULES, WelcomeHistory(), at("2026-11-23 10:00")).variant.id
        == pick_variant(script, "wmCUST1").id
    )


def test_fill_leaves_the_customer_name_for_the_sender() -> None:
    text = fill(
        "{customer_name}您好，我是{store}的{guide_name} {{x}}", {"store": "徐{汇}店", "guide_name": "小林"}
    )
    assert text == "{customer_name}您好，我是徐{{汇}}店的小林 {{x}}"


def test_attachments_become_wecom_shapes(tmp_path: Path) -> None:
    rules = load_rules(LIBRARY / "welcome.yaml")
    b = next(v for v in rules.by_id["standard"].variants if v.id == "b")
    shapes = [wecom_attachment(a, tmp_path) for a in b.attachments]
    assert shapes[0] == {
        "msgtype": "image",
        "image": {"media_path": str(tmp_path / "media/diaper_size_chart.png")},
    }
    assert shapes[1]["msgtype"] == "link" and shapes[1]["link"]["url"].startswith("https://")
    mini = rules.by_id["weekend_evening"].variants[0].attachments[0]
    assert wecom_attachment(mini, tmp_path)["miniprogram"]["pic_media_path"].endswith("miniprogram_cover.png")


def test_sample_library_demo_story() -> None:
    """Saturday 21:00 at the store gets the weekend-evening welcome naming the store."""
    rules = load_rules(LIBRARY / "welcome.yaml")
    pick = pick_welcome(add(state="store_12"), rules, WelcomeHistory(), at("2026-11-21 21:00"))
    assert pick.script.id == "weekend_evening" and "{store}" in pick.variant.text


@pytest.mark.parametrize(
    ("edit", "line", "reason"),
    [
        (("script: night", "script: nite"), 15, "unknown script 'nite'"),
        (("default: standard", "default: plain"), 5, "unknown script 'plain'"),
        (("time: 21:00-08:00", "time: 21:00-25:00"), 14, "not a time of day"),
        (("time: 21:00-08:00", "time: 9pm"), 14, "must look like 09:00-18:00"),
        (("time: 21:00-08:00", "time: 08:00-08:00"), 14, "empty"),
        (("2026-12-25]", "2026-12-32]"), 11, "bad date '2026-12-32'"),
        (("2026-10-01..2026-10-07", "2026-10-07..2026-10-01"), 11, "ends before it starts"),
        (("weight: 3", "weight: 0"), 32, "weight must be positive"),
        (("weight: 1", "weight: -2"), 33, "weight must be positive"),
        (("text: 晚上好", 'text: "晚上好{nickname}"'), 36, "unknown variable {nickname}"),
        (("days: sat,sun", "days: weekend"), 17, "unknown days"),
    ],
)
def test_loader_errors_name_file_and_line(edit: tuple[str, str], line: int, reason: str) -> None:
    old, new = edit
    assert old in BASE
    with pytest.raises(errors.ContentErrors) as info:
        load_rules_text(BASE.replace(old, new, 1))
    found = [(p.file, p.line, p.reason) for p in info.value.errors]
    assert any(f == "welcome.yaml" and n == line and reason in r for f, n, r in found), found


def test_missing_media_and_duplicates_are_reported(tmp_path: Path) -> None:
    text = BASE.replace(
        '      - {id: b, weight: 1, text: "欢迎来到{brand}"}',
        '      - {id: a, weight: 1, text: "欢迎来到{brand}",'
        " attachments: [{type: image, media_path: media/x.png}]}",
    )
    with pytest.raises(errors.ContentErrors) as info:
        load_rules_text(text, library_dir=tmp_path)
    reasons = [(p.line, p.reason) for p in info.value.errors]
    assert (33, "duplicate variant id 'a'") in reasons
    assert any(line == 33 and "media file 'media/x.png' not found" in r for line, r in reasons)


def test_yaml_syntax_error_has_its_line() -> None:
    with pytest.raises(errors.ContentErrors) as info:
        load_rules_text(BASE.replace("text: 晚上好", "text: 晚上好{nickname}"))
    assert info.value.errors[0].line == 36 and "YAML syntax" in info.value.errors[0].reason


def test_parse_window_edges() -> None:
    assert parse_window("09:00-18:00").contains(9 * 60) and not parse_window("09:00-18:00").contains(18 * 60)
    late = parse_window("18:00-24:00")
    assert late.contains(23 * 60 + 59.99) and not late.contains(0)
