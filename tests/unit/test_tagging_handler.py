"""handlers/tagging.py decisions, as tables: a message in, actions out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot import actions as act
from bot.deps import TagSyncView
from bot.tagging import load_rules
from handlers import tagging
from handlers.tag_extract import compile_rules, extract

RULES = load_rules(Path(__file__).resolve().parents[2] / "content_library" / "tagging.yaml")
COMPILED = compile_rules(RULES)
TODAY = dt.date(2026, 3, 14)
CUST = "wmCUSTOMER"
AT = 1_800_000_000.0


def decide(text: str, key: str = "kf:msg1") -> list[act.Action]:
    extraction = extract(text, COMPILED, today=TODAY)
    return tagging.learnt_actions(CUST, key, extraction, RULES, at=AT, sync_delay=30.0)


def test_a_mother_of_an_eight_month_old() -> None:
    out = decide("宝宝八个月了，奶粉喝几段")
    tags = {(a.tag, a.group, a.rule) for a in out if isinstance(a, act.TagCustomer)}
    assert tags == {("宝妈", "人群", "mom_words"), ("奶粉-2段", "阶段", "stage2_by_age")}
    [attr] = [a for a in out if isinstance(a, act.SetAttribute)]
    assert (attr.key, attr.value, attr.rule, attr.source_text) == (
        "baby_birth_month",
        "2025-07",
        "baby_age",
        "宝宝八个月",
    )
    [score] = [a for a in out if isinstance(a, act.AddLeadScore)]
    assert (score.points, score.source_key) == (10, "kf:msg1")
    [entry] = [a for a in out if isinstance(a, act.RecordTimeline)]
    assert entry.source_key == "tagging:kf:msg1" and entry.kind == "tags_learnt"
    [timer] = [a for a in out if isinstance(a, act.Schedule)]
    assert (
        timer.kind == "tags_sync" and timer.due_at == AT + 30 and timer.payload == {"external_userid": CUST}
    )


@pytest.mark.parametrize("text", ["我姐姐家孩子两岁", "我不是宝妈", "好的谢谢", "以前给老大喝的"])
def test_others_children_negation_and_small_talk_produce_nothing(text: str) -> None:
    assert decide(text) == []


def test_a_replayed_message_gives_the_same_keys() -> None:
    # Points are unique on the message key: the effect records them once (see the e2e replay test).
    first, again = decide("宝宝八个月了"), decide("宝宝八个月了")
    assert first == again


def test_a_burst_shares_one_sync_timer_and_a_later_message_gets_another() -> None:
    assert tagging.sync_key(CUST, 1000.0, 30) == tagging.sync_key(CUST, 1019.0, 30)
    assert tagging.sync_key(CUST, 1000.0, 30) != tagging.sync_key(CUST, 1031.0, 30)


def test_sync_orders_corp_tags_before_one_mark_per_guide() -> None:
    view = TagSyncView((("人群", "宝妈"),), ("xiaolin", "zhangmei"))
    out = tagging.sync_actions(CUST, view, "tags_sync:k")
    assert [type(a).__name__ for a in out] == ["EnsureCorpTags", "MarkTags", "MarkTags"]
    assert {a.partition for a in out} == {f"cust:{CUST}"}
    assert [a.userid for a in out if isinstance(a, act.MarkTags)] == ["xiaolin", "zhangmei"]


@pytest.mark.parametrize(
    "view", [TagSyncView((("人群", "宝妈"),), ()), TagSyncView((), ("xiaolin",))], ids=["no guide", "no tags"]
)
def test_nothing_is_sent_without_a_guide_or_new_tags(view: TagSyncView) -> None:
    assert tagging.sync_actions(CUST, view, "k") == []


def test_invalid_rules_keep_the_last_good_version() -> None:
    good = type(
        "Snap",
        (),
        {
            "files": {
                "tagging.yaml": (
                    Path(__file__).resolve().parents[2] / "content_library" / "tagging.yaml"
                ).read_text()
            }
        },
    )()
    bad = type("Snap", (), {"files": {"tagging.yaml": "brand: [unclosed"}})()
    served = tagging.prepare_rules(good)
    assert served is not None
    assert tagging.prepare_rules(bad) is served
