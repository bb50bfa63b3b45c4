"""Lifecycle stages: a transition table for every rule, settling, due_checks, stages.yaml errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot import errors
from bot.clock import SHANGHAI
from bot.lifecycle import (
    ACTIVE,
    ADDED,
    AFTER_SALES,
    CHURNED,
    CONVERTED,
    DORMANT,
    IN_GROUP,
    RETAINED,
    StageFacts,
    StagesConfig,
    active_window_start,
    decide_stage,
    due_checks,
    is_purchase_tag,
    load_stages,
    load_stages_text,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = StagesConfig()  # retained 7, active 3 in 7, after-sales 3, dormant 30
T0 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)


def day(n: float) -> dt.datetime:
    """T0 plus `n` days."""
    return T0 + dt.timedelta(days=n)


CONTACT = StageFacts(is_contact=True, added_at=T0)
GROUP_ONLY = StageFacts(in_groups=1, joined_group_at=T0)
CONTACT_IN_GROUP = StageFacts(is_contact=True, added_at=T0, in_groups=1, joined_group_at=day(1))
GONE = StageFacts(is_contact=False, added_at=T0, last_message_at=day(2))
CHATTY = StageFacts(is_contact=True, added_at=T0, messages_in_window=3, last_message_at=day(2))
TALKED = StageFacts(is_contact=True, added_at=T0, messages_in_window=1, last_message_at=day(2))
BOUGHT = StageFacts(is_contact=True, added_at=T0, last_purchase_at=day(5))
TAGGED = StageFacts(is_contact=True, added_at=T0, purchase_tagged_at=day(5))


def facts(base: StageFacts, **changes: object) -> StageFacts:
    """`base` with some facts changed."""
    return StageFacts(**{**base.__dict__, **changes})


# (name, current, facts, trigger, now, expected (to_stage, reason) or None)
TABLE = [
    # Rule 3: entry.
    ("new contact", None, CONTACT, "contact_added", day(0), (ADDED, "added")),
    ("new group member", None, GROUP_ONLY, "group_joined", day(0), (IN_GROUP, "joined_group")),
    (
        "new contact already in a group",
        None,
        CONTACT_IN_GROUP,
        "group_joined",
        day(1),
        (IN_GROUP, "joined_group"),
    ),
    ("unknown and unreachable: nothing", None, StageFacts(), "message", day(0), None),
    # Rule 7: 加微 → 入群.
    ("contact joins a group", ADDED, CONTACT_IN_GROUP, "group_joined", day(1), (IN_GROUP, "joined_group")),
    ("a second group changes nothing", IN_GROUP, CONTACT_IN_GROUP, "group_joined", day(2), None),
    ("a second guide changes nothing", ADDED, CONTACT, "contact_added", day(1), None),
    # Rule 8c: 留存 after 7 days.
    ("6 days 23 h: not yet", ADDED, CONTACT, "tick", day(7) - dt.timedelta(hours=1), None),
    ("7 days: retained", ADDED, CONTACT, "tick", day(7), (RETAINED, "retained")),
    ("in group, 7 days after the add", IN_GROUP, CONTACT_IN_GROUP, "tick", day(7), (RETAINED, "retained")),
    ("group only, 7 days after joining", IN_GROUP, GROUP_ONLY, "tick", day(7), (RETAINED, "retained")),
    (
        "retained by a late message too",
        ADDED,
        facts(TALKED, last_message_at=day(8)),
        "message",
        day(8),
        (RETAINED, "retained"),
    ),
    ("retained stays retained", RETAINED, CONTACT, "tick", day(8), None),
    # Rule 6: 活跃.
    ("3 messages in the window", ADDED, CHATTY, "message", day(2), (ACTIVE, "active")),
    ("2 messages are not enough", ADDED, facts(CHATTY, messages_in_window=2), "message", day(2), None),
    (
        "retained customer gets chatty",
        RETAINED,
        facts(CHATTY, last_message_at=day(9)),
        "message",
        day(9),
        (ACTIVE, "active"),
    ),
    ("group member gets chatty", IN_GROUP, facts(CHATTY, in_groups=1), "message", day(2), (ACTIVE, "active")),
    ("active stays active", ACTIVE, CHATTY, "message", day(2), None),
    ("a tick never makes anyone active", ADDED, CHATTY, "tick", day(2), None),
    # Rule 4: purchase.
    ("order from 加微", ADDED, BOUGHT, "order", day(5), (CONVERTED, "purchased")),
    ("order from 活跃", ACTIVE, BOUGHT, "order", day(5), (CONVERTED, "purchased")),
    ("purchase tag from 留存", RETAINED, TAGGED, "tag_added", day(5), (CONVERTED, "purchased")),
    (
        "order wakes a dormant customer",
        DORMANT,
        facts(BOUGHT, last_purchase_at=day(60)),
        "order",
        day(60),
        (CONVERTED, "purchased"),
    ),
    ("second order while 转化", CONVERTED, BOUGHT, "order", day(6), None),
    (
        "repurchase from 售后",
        AFTER_SALES,
        facts(BOUGHT, last_purchase_at=day(20)),
        "order",
        day(20),
        (CONVERTED, "repurchased"),
    ),
    (
        "a tag does not pull 售后 back",
        AFTER_SALES,
        facts(BOUGHT, purchase_tagged_at=day(20)),
        "tag_added",
        day(20),
        None,
    ),
    ("tag_added without a purchase tag", ACTIVE, CHATTY, "tag_added", day(3), None),
    ("order for a churned customer", CHURNED, facts(GONE, last_purchase_at=day(40)), "order", day(40), None),
    # Rule 8b: 售后.
    ("2 days after the purchase", CONVERTED, BOUGHT, "tick", day(7), None),
    ("3 days after the purchase", CONVERTED, BOUGHT, "tick", day(8), (AFTER_SALES, "after_sales")),
    ("售后 from a tag's time", CONVERTED, TAGGED, "tick", day(8), (AFTER_SALES, "after_sales")),
    ("售后 only after 转化", ACTIVE, BOUGHT, "tick", day(8), None),
    # Rule 8a: 沉默 (30 days after the last sign of life).
    ("29 days silent", ACTIVE, CHATTY, "tick", day(31), None),
    ("30 days silent", ACTIVE, CHATTY, "tick", day(32), (DORMANT, "dormant")),
    ("never wrote: 30 days after the add", RETAINED, CONTACT, "tick", day(30), (DORMANT, "dormant")),
    ("after downtime: straight to 沉默, not via 留存", ADDED, CONTACT, "tick", day(40), (DORMANT, "dormant")),
    ("a purchase is a sign of life", AFTER_SALES, BOUGHT, "tick", day(34), None),
    ("buyers go quiet too", AFTER_SALES, BOUGHT, "tick", day(35), (DORMANT, "dormant")),
    ("dormant stays dormant", DORMANT, CONTACT, "tick", day(90), None),
    # Rule 5: a dormant customer acts.
    (
        "dormant writes once → 留存",
        DORMANT,
        facts(TALKED, last_message_at=day(50)),
        "message",
        day(50),
        (RETAINED, "woke_up"),
    ),
    (
        "dormant writes a lot → 活跃",
        DORMANT,
        facts(CHATTY, last_message_at=day(50)),
        "message",
        day(50),
        (ACTIVE, "woke_up"),
    ),
    (
        "dormant buyer writes → 售后",
        DORMANT,
        facts(BOUGHT, last_message_at=day(50), messages_in_window=5),
        "message",
        day(50),
        (AFTER_SALES, "woke_up"),
    ),
    (
        "dormant joins a group",
        DORMANT,
        facts(CONTACT_IN_GROUP, joined_group_at=day(50)),
        "group_joined",
        day(50),
        (RETAINED, "woke_up"),
    ),
    (
        "dormant group-only member joins another group before 7 days",
        DORMANT,
        facts(GROUP_ONLY, joined_group_at=day(50)),
        "group_joined",
        day(50),
        (IN_GROUP, "woke_up"),
    ),
    ("a tick does not wake anyone", DORMANT, facts(TALKED, last_message_at=day(50)), "tick", day(50), None),
    # Rule 1: 流失 beats everything.
    ("deleted her only guide", ACTIVE, GONE, "contact_deleted", day(3), (CHURNED, "churned")),
    (
        "deleted the guide while 售后",
        AFTER_SALES,
        facts(GONE, last_purchase_at=day(2)),
        "contact_deleted",
        day(9),
        (CHURNED, "churned"),
    ),
    ("deleted the guide while 沉默", DORMANT, GONE, "contact_deleted", day(60), (CHURNED, "churned")),
    (
        "churn beats a purchase",
        ACTIVE,
        facts(GONE, last_purchase_at=day(3)),
        "order",
        day(3),
        (CHURNED, "churned"),
    ),
    (
        "group-only member leaves the last group",
        IN_GROUP,
        facts(GROUP_ONLY, in_groups=0),
        "group_left",
        day(3),
        (CHURNED, "churned"),
    ),
    (
        "deleted the guide but still in a group",
        ACTIVE,
        facts(CHATTY, is_contact=False, in_groups=1),
        "contact_deleted",
        day(3),
        None,
    ),
    ("left every group but still a contact", IN_GROUP, CONTACT, "group_left", day(3), None),
    ("one of two guides deleted", ACTIVE, CHATTY, "contact_deleted", day(3), None),
    ("a missed delete is caught on a tick", RETAINED, GONE, "tick", day(9), (CHURNED, "churned")),
    # Rule 2: back from 流失.
    (
        "churned re-adds a guide",
        CHURNED,
        facts(CONTACT, added_at=day(90)),
        "contact_added",
        day(90),
        (ADDED, "returned"),
    ),
    (
        "churned buyer re-adds: 加微, not 转化",
        CHURNED,
        facts(BOUGHT, added_at=day(90)),
        "contact_added",
        day(90),
        (ADDED, "returned"),
    ),
    (
        "churned rejoins a group only",
        CHURNED,
        facts(GROUP_ONLY, joined_group_at=day(90)),
        "group_joined",
        day(90),
        (IN_GROUP, "returned"),
    ),
    ("churned stays churned", CHURNED, GONE, "tick", day(90), None),
]


@pytest.mark.parametrize(
    ("name", "current", "stage_facts", "trigger", "now", "expected"), TABLE, ids=[row[0] for row in TABLE]
)
def test_decide_stage(
    name: str,
    current: str | None,
    stage_facts: StageFacts,
    trigger: str,
    now: dt.datetime,
    expected: tuple[str, str] | None,
) -> None:
    got = decide_stage(current, stage_facts, trigger, now, CONFIG)  # type: ignore[arg-type]
    assert (None if got is None else (got.to_stage, got.reason)) == expected
    if got is not None:
        assert got.detail
        # Settled: the same facts and trigger do not move her again.
        assert decide_stage(got.to_stage, stage_facts, trigger, now, CONFIG) is None  # type: ignore[arg-type]


def test_churn_on_deleting_the_guide_when_configured() -> None:
    strict = StagesConfig(churn={"requires_leaving_groups": False})  # type: ignore[arg-type]
    still_in_group = facts(CHATTY, is_contact=False, in_groups=2)
    got = decide_stage(ACTIVE, still_in_group, "contact_deleted", day(3), strict)
    assert got is not None and (got.to_stage, got.reason) == (CHURNED, "churned")
    assert "仍在客户群" in got.detail
    # And a group alone does not bring her back under that setting.
    assert decide_stage(CHURNED, still_in_group, "group_joined", day(4), strict) is None


def test_thresholds_come_from_the_config() -> None:
    config = StagesConfig(
        retained_after_days=3, active={"min_messages": 2, "window_days": 3}, dormant_after_days=10
    )  # type: ignore[arg-type]
    got = decide_stage(ADDED, CONTACT, "tick", day(3), config)
    assert got is not None and got.to_stage == RETAINED and got.detail == "添加导购 3 天后仍是好友"
    got = decide_stage(ADDED, facts(CHATTY, messages_in_window=2), "message", day(2), config)
    assert got is not None and got.detail == "3 天内发来 2 条消息"
    assert active_window_start(day(10), config) == day(7)


def test_details_read_as_timeline_lines() -> None:
    cases = [
        (ADDED, CHATTY, "message", day(2), "7 天内发来 3 条消息"),
        (CONVERTED, BOUGHT, "tick", day(8), "购买满 3 天，进入售后期"),
        (ACTIVE, CHATTY, "tick", day(32), "30 天没有任何互动"),
        (ACTIVE, GONE, "contact_deleted", day(3), "删除了所有导购，且不在任何客户群"),
        (RETAINED, TAGGED, "tag_added", day(5), "被打上购买标签「已购」"),
        (DORMANT, facts(TALKED, last_message_at=day(50)), "message", day(50), "沉默后再次发来消息"),
    ]
    for current, stage_facts, trigger, now, detail in cases:
        got = decide_stage(current, stage_facts, trigger, now, CONFIG)  # type: ignore[arg-type]
        assert got is not None and got.detail == detail


def test_unknown_trigger_or_stage_is_a_bug() -> None:
    with pytest.raises(ValueError, match="trigger"):
        decide_stage(ADDED, CONTACT, "reply", day(1), CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage"):
        decide_stage("新客", CONTACT, "tick", day(1), CONFIG)


def test_is_purchase_tag() -> None:
    assert is_purchase_tag("已购", CONFIG)
    assert is_purchase_tag(" 已购 ", CONFIG)
    assert not is_purchase_tag("VIP", CONFIG)


# ---------------------------------------------------------------------------------------- due_checks


@pytest.mark.parametrize(
    ("current", "stage_facts", "expected"),
    [
        (ADDED, CONTACT, day(7)),  # 留存 before 沉默
        (IN_GROUP, GROUP_ONLY, day(7)),
        (RETAINED, CONTACT, day(30)),
        (ACTIVE, CHATTY, day(32)),
        (ACTIVE, facts(CHATTY, joined_group_at=day(4), in_groups=1), day(34)),
        (CONVERTED, BOUGHT, day(8)),  # 售后 before 沉默
        (CONVERTED, TAGGED, day(8)),
        (AFTER_SALES, BOUGHT, day(35)),
        (DORMANT, CONTACT, None),  # only an action wakes her
        (CHURNED, GONE, None),
        (None, CONTACT, None),
        (ADDED, StageFacts(is_contact=True), None),  # nothing to count from
    ],
)
def test_due_checks(current: str | None, stage_facts: StageFacts, expected: dt.datetime | None) -> None:
    assert due_checks(current, stage_facts, CONFIG) == expected


def test_due_checks_agree_with_ticks() -> None:
    """Just before the due time a tick does nothing; at it, the tick moves her."""
    for current, stage_facts in [
        (ADDED, CONTACT),
        (CONVERTED, BOUGHT),
        (ACTIVE, CHATTY),
        (RETAINED, CONTACT),
    ]:
        due = due_checks(current, stage_facts, CONFIG)
        assert due is not None
        assert decide_stage(current, stage_facts, "tick", due - dt.timedelta(seconds=1), CONFIG) is None
        assert decide_stage(current, stage_facts, "tick", due, CONFIG) is not None


def test_a_customer_walks_the_funnel() -> None:
    """加微 → 入群 → 留存 → 活跃 → 转化 → 售后 → 沉默 → 售后 → 流失 → 加微, by events and timers."""
    steps = [
        (CONTACT, "contact_added", day(0)),
        (CONTACT_IN_GROUP, "group_joined", day(1)),
        (CONTACT_IN_GROUP, "tick", due_checks(IN_GROUP, CONTACT_IN_GROUP, CONFIG)),
        (facts(CONTACT_IN_GROUP, messages_in_window=3, last_message_at=day(9)), "message", day(9)),
        (facts(CONTACT_IN_GROUP, last_message_at=day(9), last_purchase_at=day(10)), "order", day(10)),
        (facts(CONTACT_IN_GROUP, last_message_at=day(9), last_purchase_at=day(10)), "tick", day(13)),
        (facts(CONTACT_IN_GROUP, last_message_at=day(9), last_purchase_at=day(10)), "tick", day(40)),
        (facts(CONTACT_IN_GROUP, last_message_at=day(41), last_purchase_at=day(10)), "message", day(41)),
        (StageFacts(last_message_at=day(41), last_purchase_at=day(10)), "contact_deleted", day(42)),
        (StageFacts(is_contact=True, added_at=day(80), last_purchase_at=day(10)), "contact_added", day(80)),
    ]
    stage: str | None = None
    seen = []
    for stage_facts, trigger, now in steps:
        assert now is not None
        got = decide_stage(stage, stage_facts, trigger, now, CONFIG)  # type: ignore[arg-type]
        assert got is not None, (stage, trigger)
        stage = got.to_stage
        seen.append(stage)
    assert seen == [
        ADDED,
        IN_GROUP,
        RETAINED,
        ACTIVE,
        CONVERTED,
        AFTER_SALES,
        DORMANT,
        AFTER_SALES,
        CHURNED,
        ADDED,
    ]


# --------------------------------------------------------------------------------------- stages.yaml


def test_shipped_stages_yaml_loads() -> None:
    config = load_stages(ROOT / "sop" / "stages.yaml")
    assert config.retained_after_days == 7
    assert config.active.min_messages == 3 and config.active.window_days == 7
    assert config.purchase_tags == ("已购",)
    assert config.after_sales_after_days == 3
    assert config.dormant_after_days == 30
    assert config.churn.requires_leaving_groups is True


def test_empty_stages_file_means_defaults() -> None:
    assert load_stages_text("# nothing yet\n") == StagesConfig()


def test_every_problem_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "stages.yaml"
    path.write_text(
        "# thresholds\n"
        "retained_after_days: seven\n"
        "active:\n"
        "  min_messages: 0\n"
        "  window_day: 7\n"
        "purchase_tags: ['已购', '']\n"
        "after_sales_after_days: true\n"
        "dormant_after_days: 30\n"
        "dormant_after_days: 40\n",
        encoding="utf-8",
    )
    with pytest.raises(errors.ContentErrors) as caught:
        load_stages(path)
    lines = [str(e) for e in caught.value.errors]
    name = str(path)
    assert lines == [
        f"{name}:2: retained_after_days: Input should be a valid integer",
        f"{name}:4: active.min_messages: Input should be greater than or equal to 1",
        f"{name}:5: active.window_day: Extra inputs are not permitted",
        f"{name}:6: purchase_tags[1]: String should have at least 1 character",
        f"{name}:7: after_sales_after_days: Input should be a valid integer",
        f"{name}:9: duplicate key 'dormant_after_days' (first on line 8)",
    ]


def test_dormant_must_outlast_retained() -> None:
    with pytest.raises(errors.ContentErrors) as caught:
        load_stages_text("retained_after_days: 30\nactive: {min_messages: 2}\ndormant_after_days: 7\n")
    assert [str(e) for e in caught.value.errors] == [
        "stages.yaml:3: dormant_after_days (7) must be longer than retained_after_days (30)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("retained_after_days: [7\n", "stages.yaml:2: YAML syntax"),
        ("- 7\n- 30\n", "stages.yaml:1: must be a mapping of thresholds"),
        ("unknown_rule: 3\n", "stages.yaml:1: unknown_rule: Extra inputs are not permitted"),
    ],
)
def test_shape_errors(text: str, expected: str) -> None:
    with pytest.raises(errors.ContentErrors) as caught:
        load_stages_text(text)
    assert str(caught.value.errors[0]).startswith(expected)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ContentErrors, match="does not exist"):
        load_stages(tmp_path / "stages.yaml")
