"""Tagging rules and engine: extraction tables, negation and other people, ageing attributes, YAML errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot import errors
from bot.tagging import TaggingRules, load_rules, load_rules_text
from handlers.tag_extract import Reason, compile_rules, extract, preview

ROOT = Path(__file__).resolve().parents[2]
QIMU = ROOT / "tests/fixtures/tagging/qimu_rules.yaml"
XIAOHE = ROOT / "content_library/tagging.yaml"
TODAY = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def xiaohe() -> TaggingRules:
    return load_rules(XIAOHE)


@pytest.fixture(scope="module")
def qimu() -> TaggingRules:
    return load_rules(QIMU)


@pytest.mark.parametrize(
    ("text", "tags", "attributes"),
    [
        ("宝宝8个月了 奶粉喝哪段", {"宝妈", "奶粉-2段"}, {"baby_age_months": 8}),
        ("宝宝八个月了", {"宝妈", "奶粉-2段"}, {"baby_age_months": 8}),
        ("孩子一岁半 3段奶粉有活动吗", {"宝妈", "奶粉-3段"}, {"baby_age_months": 18}),
        ("我儿子两岁三个月", {"宝妈", "奶粉-3段"}, {"baby_age_months": 27}),
        ("宝宝刚满月", {"宝妈", "奶粉-1段"}, {"baby_age_months": 1}),
        ("二宝两个月 老大四岁", {"宝妈", "二胎", "奶粉-1段"}, {"baby_age_months": 2}),
        ("怀孕20周了", {"孕期"}, {"due_date": "2027-04"}),
        ("预产期明年三月", {"孕期"}, {"due_date": "2027-03"}),
        ("预产期12月底 想囤点纸尿裤", {"孕期", "囤货", "纸尿裤"}, {"due_date": "2026-12"}),
        ("我在杭州市 能发货吗", set(), {"city": "杭州"}),
        ("预算两三百 想买辅食机", {"辅食"}, {"budget_yuan": 300}),
        ("京东上这个羊奶粉便宜二十", {"比价中", "羊奶粉"}, {}),
        ("帮我下单两罐3段", {"高意向", "奶粉-3段"}, {}),
    ],
)
def test_xiaohe_extraction(xiaohe: TaggingRules, text: str, tags: set[str], attributes: dict) -> None:
    result = extract(text, xiaohe, today=TODAY)
    assert set(result.tags) == tags
    assert result.as_of(TODAY) == attributes


@pytest.mark.parametrize(
    "text",
    [
        "我姐姐家孩子两岁",
        "我闺蜜怀孕了 送什么好",
        "外甥一岁半了",
        "朋友家宝宝三个月",
        "孩子3岁 不是我的 是我表姐家的",
        "我一岁半的时候就喝这个奶粉了",
        "我不是宝妈",
        "以前是宝妈粉",
        "要是有孩子的话",
        "同事怀孕20周了",
        "儿子七岁了",
        "孩子都上初中了",
    ],
)
def test_other_people_negation_past_and_hypotheticals_tag_nothing(xiaohe: TaggingRules, text: str) -> None:
    result = extract(text, xiaohe, today=TODAY)
    assert result.tags == ()
    assert result.attributes == {}


@pytest.mark.parametrize(
    ("text", "absent", "present"),
    [
        ("我不是学生哈 学生价我用不了吧 上班族有没有优惠", "学生", "上班族"),
        ("不喜欢美式 太苦了 拿铁呢", "美式", "拿铁"),
        ("饮料里有塑料片 不用退款了 重新做一杯就行", "退款", "投诉"),
        ("有没有不甜的面包", "", "低糖"),  # 有没有 asks; it does not negate 不甜
        ("等了一个小时还没做好 到底做不做 不做就退款", "", "退款"),
        ("我老公是学生 我是上班的", "学生", "上班族"),
        ("以前读书的时候天天来 现在工作了在外地", "学生", "上班族"),
        ("你们美式用的什么豆子 比隔壁 manner 的酸", "比价中", "美式"),
    ],
)
def test_qimu_negation_table(qimu: TaggingRules, text: str, absent: str, present: str) -> None:
    tags = extract(text, qimu, today=TODAY).tags
    assert present in tags
    if absent:
        assert absent not in tags


@pytest.mark.parametrize(
    ("text", "attributes"),
    [
        ("上周去杭州旅游喝过你们家 回上海了还能喝到吗", {"city": "上海"}),
        ("我朋友在成都 你们成都有店吗", {}),
        ("我妈生日五月 想帮她填会员资料", {}),
        ("我下个月生日 会员生日券怎么领", {"birthday_month": 12}),
        ("买了三百块的储值卡", {}),
        ("二十杯起送吗", {}),
        (
            "公司下午茶要订40杯拿铁 预算一千左右 能送到杭州滨江吗",
            {"order_cups": 40, "budget_yuan": 1000, "city": "杭州"},
        ),
        ("刚生完二胎 老大四岁 老二才两个月", {"baby_age_months": 2}),
        ("我家是双胞胎 都九个月大了", {"baby_age_months": 9}),
    ],
)
def test_qimu_attribute_table(qimu: TaggingRules, text: str, attributes: dict) -> None:
    assert extract(text, qimu, today=TODAY).as_of(TODAY) == attributes


def test_baby_age_is_stored_as_birth_month_and_right_a_year_later(xiaohe: TaggingRules) -> None:
    result = extract("宝宝八个月了", xiaohe, today=TODAY)
    assert result.attributes == {"baby_birth_month": "2026-03"}
    assert result.as_of(dt.date(2027, 11, 22)) == {"baby_age_months": 20}
    # Said in January about a baby born the previous autumn: the year boundary holds.
    january = extract("宝宝三个月", xiaohe, today=dt.date(2027, 1, 10))
    assert january.attributes == {"baby_birth_month": "2026-10"}


def test_reasons_and_score(xiaohe: TaggingRules) -> None:
    result = extract("怀孕20周了 今天就下单", xiaohe, today=TODAY)
    assert Reason("孕期", "pregnant_words", "怀孕") in result.reasons
    assert Reason("due_date", "due_from_weeks", "怀孕20周") in result.reasons
    assert any(r.tag_or_attr == "高意向" and r.rule_id == "order_soon" for r in result.reasons)
    assert result.score == 15 + 5 + 30


def test_rules_compile_once(xiaohe: TaggingRules) -> None:
    assert compile_rules(xiaohe) is compile_rules(xiaohe)


def test_extract_does_not_read_the_clock(xiaohe: TaggingRules) -> None:
    a = extract("预产期下个月", xiaohe, today=dt.date(2026, 11, 22))
    b = extract("预产期下个月", xiaohe, today=dt.date(2027, 5, 1))
    assert (a.attributes, b.attributes) == ({"due_date": "2026-12"}, {"due_date": "2027-06"})


def test_preview_shows_tags_attributes_and_why(xiaohe: TaggingRules) -> None:
    text = preview("宝宝8个月了 奶粉喝哪段", xiaohe, today=TODAY)
    assert "tags: 宝妈, 奶粉-2段" in text
    assert "baby_birth_month=2026-03" in text
    assert "baby_age_months=8" in text
    assert "宝妈 <- mom_words: 宝宝" in text


# ------------------------------------------------------------------------------------- YAML errors

BAD = """\
brand: 测试
groups:
  人群: [宝妈, 孕期]
rules:
  - id: mom
    tag: 宝妈
    any: [宝宝]
  - id: mom
    tag: 宝妈
    any: [孩子]
  - id: ghost
    tag: 学生
    any: [宿舍]
  - id: broken
    tag: 孕期
    patterns: ['孕(\\d+周']
  - id: cond
    tag: 孕期
    when: {key: shoe_size, min: 1}
attributes:
  - id: city
    key: city
    extractor: postcode
    patterns: ['在{value}']
  - id: budget
    key: budget_yuan
    extractor: number
    patterns: ['预算']
"""


def test_every_error_is_reported_with_its_line() -> None:
    with pytest.raises(errors.ContentErrors) as caught:
        load_rules_text(BAD, "tagging.yaml")
    lines = {e.line for e in caught.value.errors}
    messages = str(caught.value)
    assert "tagging.yaml:8: duplicate id 'mom' (first on line 5)" in messages
    assert "tagging.yaml:12: unknown tag '学生'" in messages
    assert "tagging.yaml:16:" in messages and "bad regex" in messages
    assert "tagging.yaml:19: unknown attribute 'shoe_size' in when" in messages
    assert "tagging.yaml:23: unknown extractor 'postcode'" in messages
    assert "tagging.yaml:28: pattern '预算' needs exactly one {value} placeholder" in messages
    assert lines == {8, 12, 16, 19, 23, 28}, messages


def test_yaml_syntax_and_duplicate_keys_have_lines() -> None:
    with pytest.raises(errors.ContentErrors) as caught:
        load_rules_text("brand: x\ngroups: {a: [b]\n", "t.yaml")
    assert caught.value.errors[0].line is not None
    with pytest.raises(errors.ContentErrors) as caught:
        load_rules_text("brand: x\nbrand: y\ngroups: {a: [b]}\n", "t.yaml")
    assert "t.yaml:2: duplicate key 'brand'" in str(caught.value)


def test_missing_field_and_unknown_placeholder() -> None:
    text = (
        "brand: x\ngroups: {g: [a]}\nrules:\n  - id: r\n    any: [x]\n"
        "  - id: s\n    tag: a\n    patterns: ['{weight}']\n"
    )
    with pytest.raises(errors.ContentErrors) as caught:
        load_rules_text(text, "t.yaml")
    messages = str(caught.value)
    assert "t.yaml:4: rules[0].tag: Field required" in messages
    assert "t.yaml:8:" in messages and "unknown placeholder {weight}" in messages


def test_shipped_rules_are_valid() -> None:
    for path in (XIAOHE, QIMU):
        rules = load_rules(path)
        assert rules.rules and rules.attributes
