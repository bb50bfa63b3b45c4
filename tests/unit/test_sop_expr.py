"""SOP condition language: results, null semantics, names read, and parse errors with their column."""

from __future__ import annotations

import pytest

from bot.sop_expr import Condition, ExpressionError, compile_condition

FACTS = {
    "tags": ["宝妈", "孕期", "纸尿裤"],
    "stage": "加微",
    "channel": "store_12",
    "lead_score": 35,
    "days_since_added": 3,
    "attributes": {"baby_age_months": 7, "city": "上海", "ratio": 2.5},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"孕期" in tags', True),
        ('"员工" in tags', False),
        ('not ("员工" in tags)', True),
        ('"员工" not in tags', True),
        ("'宝妈' in tags and lead_score >= 30", True),
        ("lead_score > 35 or days_since_added == 3", True),
        ("lead_score > 35 or days_since_added != 3", False),
        ("attributes.baby_age_months < 12", True),
        ("attributes.baby_age_months >= 6 and attributes.baby_age_months <= 11", True),
        ("attributes.ratio == 2.5", True),
        ("attributes.ratio > -1", True),
        ('stage == "加微"', True),
        ('stage in ["沉默", "流失"]', False),
        ('stage not in ["沉默", "流失"]', True),
        ('"海" in attributes.city', True),  # substring of a string
        ('"city" in attributes', True),  # key of a mapping
        ('has_tag("孕期")', True),
        ('has_tag("已购")', False),
        ('has_any_tag("已购", "纸尿裤")', True),
        ("not not true", True),
        ("true and false or true", True),  # and binds tighter than or
        ("true and (false or false)", False),
        ("not true or true", True),  # not binds tighter than or
        ("tags", True),  # a non-empty list is true
        ("attributes.missing", False),
        ("1 == 1.0", True),
        ('"1" == 1', False),
        ("true == 1", False),
        ('"a" < "b"', True),
        ('"a" < 1', False),  # incomparable types are false, not an error
        ("(((lead_score)))  ==  35", True),
        ("'it\\'s' == \"it's\"", True),
    ],
)
def test_evaluates(text: str, expected: bool) -> None:
    assert compile_condition(text).evaluate(FACTS) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("attributes.baby_age_months < 12", False),
        ("attributes.baby_age_months >= 12", False),
        ("attributes.baby_age_months == 3", False),
        ('stage != "沉默"', False),  # a comparison with a missing value is false, even !=
        ('"孕期" in tags', False),
        ('"孕期" not in tags', False),
        ('not ("孕期" in tags)', True),
        ('has_tag("孕期")', False),
        ("stage == null", True),
        ("null == stage", True),
        ("stage != null", False),
        ("attributes.baby_age_months == null", True),
        ("lead_score.deeper == null", True),  # a path through a non-mapping is missing
        ("not stage", True),
    ],
)
def test_missing_facts_are_null_and_never_raise(text: str, expected: bool) -> None:
    assert compile_condition(text).evaluate({"lead_score": 5}) is expected


def test_odd_fact_values_are_false_not_errors() -> None:
    condition = compile_condition('"x" in tags')
    assert condition.evaluate({"tags": 42}) is False
    assert condition.evaluate({"tags": [["x"]]}) is False
    assert compile_condition("attributes.a < 1").evaluate({"attributes": "not a mapping"}) is False
    assert compile_condition("x < 1").evaluate({"x": True}) is False  # booleans are not numbers


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('not ("员工" in tags)', {"tags"}),
        ('has_tag("孕期") and attributes.baby_age_months < 12', {"tags", "attributes.baby_age_months"}),
        ('stage == "沉默" or days_since_added > 30 or x.y.z', {"stage", "days_since_added", "x.y.z"}),
        ("1 < 2", set()),
    ],
)
def test_names(text: str, names: set[str]) -> None:
    condition = compile_condition(text)
    assert isinstance(condition, Condition)
    assert condition.names == frozenset(names)


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("", 1, "the condition is empty"),
        ("   ", 1, "the condition is empty"),
        ("a && b", 3, "use 'and' instead of '&&'"),
        ("a || b", 3, "use 'or' instead of '||'"),
        ("a = 1", 3, "use '==' to compare"),
        ("!a", 1, "use 'not' instead of '!'"),
        ("(a", 3, "expected ')' to close the '(' at column 1, found end of condition"),
        ("a)", 2, "unexpected ')' after a complete condition"),
        ("a b", 3, "expected an operator (and, or, ==, in, ...) before 'b'"),
        ('tags "x"', 6, "expected an operator (and, or, ==, in, ...) before string 'x'"),
        ('"孕期 in tags', 1, 'string starting here has no closing "'),
        ("a == ", 6, "expected a value, found end of condition"),
        ("a and", 6, "expected a value, found end of condition"),
        ("a in in", 6, "expected a value, found 'in'"),
        ("foo(1)", 1, "unknown function 'foo'; known: has_any_tag, has_tag"),
        ("has_tag()", 1, "has_tag() takes 1 argument(s), got 0"),
        ('has_tag("a", "b")', 1, "has_tag() takes 1 argument(s), got 2"),
        ('has_any_tag("a"', 16, "expected ',' or ')' in the call of has_any_tag, found end of condition"),
        ('x in ["a", "b"', 15, "expected ',' or ']' to close the '[' at column 6, found end of condition"),
        ("attributes.", 12, "expected a name after '.', found end of condition"),
        ("a < b < c", 7, "unexpected '<' after a complete condition"),
        ("12abc", 3, "unexpected 'a' right after the number 12"),
        ("a ; b", 3, "unexpected character ';'"),
        ("x == 1 and not", 15, "expected a value, found end of condition"),
    ],
)
def test_parse_errors_have_a_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_condition(text)
    assert (info.value.column, info.value.reason) == (column, reason)
    assert str(info.value) == f"column {column}: {reason}"
    assert isinstance(info.value, ValueError)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(ExpressionError, match="nested more than"):
        compile_condition("(" * 200 + "a" + ")" * 200)
    with pytest.raises(ExpressionError, match="at most"):
        compile_condition("a or " * 1000 + "a")


def test_no_python_evaluation() -> None:
    # Python syntax is not the language: attribute access and calls of builtins are refused.
    for text in ("__import__('os')", "tags.__class__ == 1 or open('x')"):
        with pytest.raises(ExpressionError):
            compile_condition(text)
    assert compile_condition("tags.__class__ == null").evaluate({"tags": []}) is True
