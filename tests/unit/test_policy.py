"""Manners: quiet hours at the edges, caps across playbooks, WeCom's mass cap, kf window, opt-out tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from pydantic import ValidationError

from bot.clock import SHANGHAI
from bot.policy import (
    CountWindows,
    Defer,
    PolicySettings,
    Proposal,
    Send,
    SendHistory,
    Skip,
    classify_unsubscribe,
    decide,
    is_quiet,
    mass_cap_limit,
    next_allowed,
    opt_reply,
    windows,
)

SETTINGS = PolicySettings()
UTC = dt.UTC


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """A 2026 instant in Asia/Shanghai (2026-11-22 is a Sunday, 11-23 a Monday)."""
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


def proposal(due: dt.datetime, **overrides: object) -> Proposal:
    """A marketing mass-task step due at `due`."""
    base = Proposal("wm_ann", "xiaolin", "new_contact", "day1", True, "mass_task", due)
    return replace(base, **overrides)


# ------------------------------------------------------------------------------------------- quiet


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(11, 20, 21, 29), at(11, 20, 21, 29)),
        (at(11, 20, 21, 29, 59), at(11, 20, 21, 29, 59)),
        (at(11, 20, 21, 30), at(11, 21, 8, 30)),
        (at(11, 20, 23, 59, 59), at(11, 21, 8, 30)),
        (at(11, 21, 0, 0), at(11, 21, 8, 30)),
        (at(11, 21, 8, 29), at(11, 21, 8, 30)),
        (at(11, 21, 8, 29, 59), at(11, 21, 8, 30)),
        (at(11, 21, 8, 30), at(11, 21, 8, 30)),
        (at(11, 21, 12, 0), at(11, 21, 12, 0)),
        # Sunday night → Monday morning; month and year ends.
        (at(11, 22, 22, 0), at(11, 23, 8, 30)),
        (at(11, 30, 23, 0), at(12, 1, 8, 30)),
        (at(12, 31, 21, 45), dt.datetime(2027, 1, 1, 8, 30, tzinfo=SHANGHAI)),
        # Another timezone in, Shanghai out: 13:30 UTC is 21:30 in Shanghai.
        (dt.datetime(2026, 11, 20, 13, 30, tzinfo=UTC), at(11, 21, 8, 30)),
        (dt.datetime(2026, 11, 20, 13, 29, tzinfo=UTC), at(11, 20, 21, 29)),
    ],
)
def test_next_allowed_wrapping_window(when: dt.datetime, expected: dt.datetime) -> None:
    got = next_allowed(when, SETTINGS)
    assert got == expected
    assert got.tzinfo == SETTINGS.zone
    assert is_quiet(when, SETTINGS) == (got != when)


NAP = PolicySettings.model_validate({"quiet_hours": {"start": "12:00", "end": "14:00"}})


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(11, 20, 11, 59), at(11, 20, 11, 59)),
        (at(11, 20, 12, 0), at(11, 20, 14, 0)),
        (at(11, 20, 13, 59), at(11, 20, 14, 0)),
        (at(11, 20, 14, 0), at(11, 20, 14, 0)),
        (at(11, 20, 23, 0), at(11, 20, 23, 0)),
    ],
)
def test_next_allowed_window_that_does_not_wrap(when: dt.datetime, expected: dt.datetime) -> None:
    assert next_allowed(when, NAP) == expected


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    none = PolicySettings.model_validate({"quiet_hours": {"start": "00:00", "end": "00:00"}})
    assert next_allowed(at(11, 20, 3, 0), none) == at(11, 20, 3, 0)


def test_quiet_hours_in_another_timezone() -> None:
    tokyo = PolicySettings(timezone="Asia/Tokyo")
    # 21:00 in Shanghai is 22:00 in Tokyo: quiet there, allowed at 08:30 Tokyo (07:30 Shanghai).
    got = next_allowed(at(11, 20, 21, 0), tokyo)
    assert got == at(11, 21, 7, 30)
    assert str(got.tzinfo) == "Asia/Tokyo"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed(dt.datetime(2026, 11, 20, 12, 0), SETTINGS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"quiet_hours": {"start": "24:00"}},
        {"quiet_hours": {"end": "8:30"}},
        {"timezone": "Mars/Olympus"},
        {"customer_daily_cap": 0},
        {"wecom_mass_cap": "5_per_month"},
        {"resubscribe_phrases": ["td"]},
        {"unsubscribe_phrases": ["！！"]},
    ],
)
def test_settings_refuse_nonsense(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PolicySettings.model_validate(overrides)


# ----------------------------------------------------------------------------------------- windows


def test_windows_are_local_calendar_periods() -> None:
    # 2026-11-22 23:30 Shanghai is 15:30 UTC: still Sunday the 22nd locally, in the week of the 16th.
    got = windows(dt.datetime(2026, 11, 22, 15, 30, tzinfo=UTC), SETTINGS)
    assert got == CountWindows(
        day=(at(11, 22, 0), at(11, 23, 0)),
        week=(at(11, 16, 0), at(11, 23, 0)),
        month=(at(11, 1, 0), at(12, 1, 0)),
    )
    assert windows(at(12, 31, 10), SETTINGS).month[1] == dt.datetime(2027, 1, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("cap", "now", "expected"),
    [
        ("monthly_days", at(2, 10, 10), (28, "month")),
        ("monthly_days", at(11, 10, 10), (30, "month")),
        ("monthly_days", at(12, 10, 10), (31, "month")),
        ("4_per_month", at(12, 10, 10), (4, "month")),
        ("7_per_week", at(12, 10, 10), (7, "week")),
        ("1_per_day", at(12, 10, 10), (1, "day")),
    ],
)
def test_mass_cap_limit(cap: str, now: dt.datetime, expected: tuple[int, str]) -> None:
    assert mass_cap_limit(now, PolicySettings(wecom_mass_cap=cap)) == expected  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- decide

NOON = at(11, 20, 12, 0)  # a Friday
FRI_EVENING = at(11, 20, 21, 30)
SAT_MORNING = at(11, 21, 8, 30)
MON_MORNING = at(11, 23, 8, 30)


@pytest.mark.parametrize(
    ("name", "now", "history", "overrides", "expected"),
    [
        ("plain send", NOON, SendHistory(), {}, Send()),
        ("21:29 still goes", at(11, 20, 21, 29), SendHistory(), {}, Send()),
        ("21:30 is quiet", FRI_EVENING, SendHistory(), {}, ("defer", SAT_MORNING, "quiet_hours")),
        ("08:29 is quiet", at(11, 21, 8, 29), SendHistory(), {}, ("defer", SAT_MORNING, "quiet_hours")),
        ("08:30 goes", SAT_MORNING, SendHistory(), {}, Send()),
        (
            "day cap → tomorrow 08:30",
            NOON,
            SendHistory(sent_today=1),
            {},
            ("defer", SAT_MORNING, "daily_cap"),
        ),
        (
            "week cap → Monday 08:30",
            NOON,
            SendHistory(sent_today=0, sent_this_week=3),
            {},
            ("defer", MON_MORNING, "weekly_cap"),
        ),
        (
            "week cap on Sunday night → Monday 08:30, named the cap",
            at(11, 22, 23, 0),
            SendHistory(sent_this_week=3),
            {},
            ("defer", MON_MORNING, "weekly_cap"),
        ),
        (
            "day cap in quiet hours: the cap is named",
            at(11, 20, 22, 0),
            SendHistory(sent_today=1),
            {},
            ("defer", SAT_MORNING, "daily_cap"),
        ),
        (
            "after midnight: yesterday's count is not today's",
            at(11, 21, 0, 30),
            SendHistory(sent_today=0),
            {},
            ("defer", SAT_MORNING, "quiet_hours"),
        ),
        (
            "guide budget → tomorrow",
            NOON,
            SendHistory(guide_tasks_today=200),
            {},
            ("defer", SAT_MORNING, "guide_budget"),
        ),
        (
            "guide budget spares kf (no task for the guide)",
            NOON,
            SendHistory(guide_tasks_today=200, kf_last_customer_message_at=at(11, 20, 11)),
            {"route": "kf"},
            Send(),
        ),
        (
            "unsubscribed: marketing skipped",
            NOON,
            SendHistory(unsubscribed=True),
            {},
            ("skip", "unsubscribed"),
        ),
        (
            "unsubscribed: skipped even in quiet hours",
            FRI_EVENING,
            SendHistory(unsubscribed=True),
            {},
            ("skip", "unsubscribed"),
        ),
        (
            "unsubscribed: service notice goes",
            NOON,
            SendHistory(unsubscribed=True),
            {"marketing": False},
            Send(),
        ),
        (
            "service notice ignores customer caps",
            NOON,
            SendHistory(sent_today=5, sent_this_week=9),
            {"marketing": False},
            Send(),
        ),
        (
            "service notice keeps quiet hours",
            FRI_EVENING,
            SendHistory(),
            {"marketing": False},
            ("defer", SAT_MORNING, "quiet_hours"),
        ),
        (
            "service notice keeps the guide budget",
            NOON,
            SendHistory(guide_tasks_today=200),
            {"marketing": False, "route": "guide_notify"},
            ("defer", SAT_MORNING, "guide_budget"),
        ),
        (
            "not due yet",
            NOON,
            SendHistory(),
            {"due_at": at(11, 20, 15)},
            ("defer", at(11, 20, 15), "not_due"),
        ),
        (
            "due inside quiet hours",
            NOON,
            SendHistory(),
            {"due_at": at(11, 20, 22)},
            ("defer", SAT_MORNING, "quiet_hours"),
        ),
        ("late step goes now", NOON, SendHistory(), {"due_at": at(11, 18, 10)}, Send()),
    ],
)
def test_decide(
    name: str, now: dt.datetime, history: SendHistory, overrides: dict[str, object], expected: object
) -> None:
    got = decide(proposal(now, **{"due_at": now, **overrides}), history, SETTINGS, now)
    if isinstance(expected, Send):
        assert got == expected, name
    elif expected[0] == "defer":  # type: ignore[index]
        assert isinstance(got, Defer), name
        assert (got.until, got.reason) == expected[1:], name  # type: ignore[index]
        assert got.detail, name
    else:
        assert isinstance(got, Skip), name
        assert got.reason == expected[1], name  # type: ignore[index]


def test_deferral_names_the_other_blockers_and_says_when() -> None:
    got = decide(proposal(NOON), SendHistory(sent_today=1, guide_tasks_today=200), SETTINGS, NOON)
    assert isinstance(got, Defer)
    assert (got.reason, got.also) == ("daily_cap", ("guide_budget",))
    assert got.detail == "客户今天已收到 1 条推送（上限 1），顺延到 11月21日 08:30"


def test_caps_count_across_playbooks() -> None:
    """The day's send from one playbook holds back another playbook's step; the next day it goes."""
    sent = SendHistory(sent_today=1, sent_this_week=1)
    other = proposal(NOON, playbook="baby_month", step="m6")
    first = decide(other, sent, SETTINGS, NOON)
    assert isinstance(first, Defer) and first.reason == "daily_cap"
    # At the deferral time the engine counts again: a new day, one send this week.
    assert decide(other, SendHistory(sent_today=0, sent_this_week=1), SETTINGS, first.until) == Send()
    # Three sends this week from three playbooks: the fourth waits for Monday.
    third = decide(other, SendHistory(sent_today=0, sent_this_week=3), SETTINGS, SAT_MORNING)
    assert isinstance(third, Defer) and (third.reason, third.until) == ("weekly_cap", MON_MORNING)


def test_higher_caps_from_settings() -> None:
    loose = PolicySettings(customer_daily_cap=2, customer_weekly_cap=5, guide_daily_tasks=10)
    assert decide(proposal(NOON), SendHistory(sent_today=1, sent_this_week=4), loose, NOON) == Send()
    got = decide(proposal(NOON), SendHistory(guide_tasks_today=10), loose, NOON)
    assert isinstance(got, Defer) and got.reason == "guide_budget"


# ------------------------------------------------------------------------------------ WeCom mass cap


@pytest.mark.parametrize(
    ("cap", "now", "history", "expected"),
    [
        ("monthly_days", at(11, 20, 12), SendHistory(mass_this_month=29), "send"),
        ("monthly_days", at(11, 20, 12), SendHistory(mass_this_month=30), "wecom_mass_cap"),
        ("monthly_days", at(12, 20, 12), SendHistory(mass_this_month=30), "send"),
        ("4_per_month", at(11, 20, 12), SendHistory(mass_this_month=3), "send"),
        ("4_per_month", at(11, 20, 12), SendHistory(mass_this_month=4), "wecom_mass_cap"),
        ("7_per_week", at(11, 20, 12), SendHistory(mass_this_week=7, mass_this_month=7), "wecom_mass_cap"),
        ("7_per_week", at(11, 20, 12), SendHistory(mass_this_week=6, mass_this_month=20), "send"),
        ("1_per_day", at(11, 20, 12), SendHistory(mass_today=1), "wecom_mass_cap"),
        ("1_per_day", at(11, 20, 12), SendHistory(mass_today=0, mass_this_week=6), "send"),
    ],
)
def test_wecom_mass_cap_skips(cap: str, now: dt.datetime, history: SendHistory, expected: str) -> None:
    # Loose own caps, so only WeCom's cap can stop the send.
    settings = PolicySettings(wecom_mass_cap=cap, customer_daily_cap=9, customer_weekly_cap=99)  # type: ignore[arg-type]
    got = decide(proposal(now), history, settings, now)
    if expected == "send":
        assert got == Send()
    else:
        assert isinstance(got, Skip) and got.reason == expected
        assert "企业微信上限" in got.detail


def test_wecom_mass_cap_only_for_mass_tasks() -> None:
    spent = SendHistory(mass_this_month=30, kf_last_customer_message_at=at(11, 20, 11))
    assert decide(proposal(NOON, route="guide_notify"), spent, SETTINGS, NOON) == Send()
    assert decide(proposal(NOON, route="kf"), spent, SETTINGS, NOON) == Send()
    assert isinstance(decide(proposal(NOON, marketing=False), spent, SETTINGS, NOON), Skip)


def test_wecom_mass_cap_is_judged_after_a_deferral_into_a_new_period() -> None:
    """A 1-per-day cap spent today does not skip a step that quiet hours move to tomorrow."""
    settings = PolicySettings(wecom_mass_cap="1_per_day")
    got = decide(proposal(FRI_EVENING), SendHistory(mass_today=1), settings, FRI_EVENING)
    assert isinstance(got, Defer) and got.reason == "quiet_hours"


# ---------------------------------------------------------------------------------------- kf window


@pytest.mark.parametrize(
    ("now", "history", "expected"),
    [
        (NOON, SendHistory(kf_last_customer_message_at=at(11, 18, 12, 1)), "send"),
        (NOON, SendHistory(kf_last_customer_message_at=at(11, 18, 12, 0)), "kf_window"),
        (NOON, SendHistory(), "kf_window"),
        (NOON, SendHistory(kf_last_customer_message_at=at(11, 20, 11), kf_sent_since=4), "send"),
        (NOON, SendHistory(kf_last_customer_message_at=at(11, 20, 11), kf_sent_since=5), "kf_window"),
        # Quiet hours move it to 08:30, still inside the window opened at 20:00.
        (FRI_EVENING, SendHistory(kf_last_customer_message_at=at(11, 20, 20)), "quiet_hours"),
        # Window closes at 23:00 tonight: the 08:30 deferral would miss it.
        (FRI_EVENING, SendHistory(kf_last_customer_message_at=at(11, 18, 23)), "kf_window"),
    ],
)
def test_kf_window(now: dt.datetime, history: SendHistory, expected: str) -> None:
    got = decide(proposal(now, route="kf"), history, SETTINGS, now)
    if expected == "send":
        assert got == Send()
    elif expected == "quiet_hours":
        assert isinstance(got, Defer) and got.reason == expected
    else:
        assert isinstance(got, Skip) and got.reason == expected


# ------------------------------------------------------------------------------------------ opt-out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("退订", "unsubscribe"),
        ("TD", "unsubscribe"),
        ("td", "unsubscribe"),
        ("Td。", "unsubscribe"),
        ("ＴＤ", "unsubscribe"),  # full width
        ("  TD  ", "unsubscribe"),
        ("T退订", "unsubscribe"),
        ("别发了", "unsubscribe"),
        ("别发了！", "unsubscribe"),
        ("别发了!!!", "unsubscribe"),
        ("别发了谢谢", "unsubscribe"),
        ("别发了，谢谢", "unsubscribe"),
        ("以后别发了谢谢！", "unsubscribe"),
        ("麻烦别再发了", "unsubscribe"),
        ("不要再发了好吗", "unsubscribe"),
        ("我不要再发了", "unsubscribe"),
        ("退订[微笑]", "unsubscribe"),
        ("退订😊", "unsubscribe"),
        ("退 订", "unsubscribe"),
        ("取消订阅", "unsubscribe"),
        ("订阅", "resubscribe"),
        ("我要订阅", "resubscribe"),
        ("恢复推送", "resubscribe"),
        ("取消退订", "resubscribe"),
        ("重新订阅吧", "resubscribe"),
        # Not an opt-out: a phrase inside a longer sentence, a question, a negation.
        ("TD是什么意思", None),
        ("我看到TD了", None),
        ("请TD", None),
        ("TDK", None),
        ("ATD", None),
        ("怎么退订", None),
        ("不退订", None),
        ("为什么别发了", None),
        ("别发了吗", None),
        ("你们别发了我就买", None),
        ("订阅号在哪", None),
        ("我已经订阅了你们的公众号", None),
        ("好的谢谢", None),
        ("", None),
        ("！！！", None),
        ("[微笑]", None),
    ],
)
def test_classify_unsubscribe(text: str, expected: str | None) -> None:
    assert classify_unsubscribe(text, SETTINGS) == expected


def test_phrases_are_configurable() -> None:
    settings = PolicySettings(unsubscribe_phrases=("N", "不想收到了"), resubscribe_phrases=("Y",))
    assert classify_unsubscribe("n", settings) == "unsubscribe"
    assert classify_unsubscribe("不想收到了谢谢", settings) == "unsubscribe"
    assert classify_unsubscribe("退订", settings) is None
    assert classify_unsubscribe("Y", settings) == "resubscribe"


@pytest.mark.parametrize(
    ("text", "unsubscribed", "expected"),
    [
        ("别发了", False, (True, SETTINGS.texts.unsubscribed)),
        ("别发了", True, None),  # already unsubscribed: no second confirmation
        ("订阅", True, (False, SETTINGS.texts.resubscribed)),
        ("订阅", False, None),
        ("几天发货", False, None),
    ],
)
def test_opt_reply(text: str, unsubscribed: bool, expected: tuple[bool, str] | None) -> None:
    got = opt_reply(text, unsubscribed, SETTINGS)
    assert (None if got is None else (got.unsubscribed, got.reply)) == expected


def test_confirmations_are_chinese_and_say_how_to_undo() -> None:
    assert "退订" in SETTINGS.texts.unsubscribed and "订阅" in SETTINGS.texts.unsubscribed
    assert "恢复" in SETTINGS.texts.resubscribed


def test_a_step_due_in_quiet_hours_says_where_it_moved() -> None:
    got = decide(proposal(NOON, due_at=at(11, 20, 22)), SendHistory(), SETTINGS, at(11, 20, 22))
    assert got == Defer(SAT_MORNING, "quiet_hours", "免打扰时段（21:30–08:30），顺延到 11月21日 08:30")
    early = decide(proposal(NOON, due_at=at(11, 20, 22)), SendHistory(), SETTINGS, NOON)
    assert early == Defer(
        SAT_MORNING,
        "quiet_hours",
        "计划 11月20日 22:00 发送，落在免打扰时段（21:30–08:30），顺延到 11月21日 08:30",
    )
