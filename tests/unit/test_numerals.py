"""Chinese numerals, quantities, ages, months and the calendar arithmetic behind stored attributes."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bot import numerals

TODAY = dt.date(2026, 11, 22)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("八", 8),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("两百", 200),
        ("一千", 1000),
        ("一千零五", 1005),
        ("三千五百", 3500),
        ("一万", 10000),
        ("500", 500),
        ("3千", 3000),
        ("８", 8),
        ("猫", None),
        ("", None),
    ],
)
def test_parse_int(text: str, value: int | None) -> None:
    assert numerals.parse_int(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("两三百", 300),
        ("三四十", 40),
        ("二十来", 20),
        ("两百多", 200),
        ("一千左右", 1000),
        ("10到20", 20),
        ("五百", 500),
    ],
)
def test_parse_quantity_takes_the_upper_end_of_ranges(text: str, value: int) -> None:
    assert numerals.parse_quantity(text) == value


@pytest.mark.parametrize(
    ("text", "months"),
    [
        ("八个月", 8),
        ("10个月", 10),
        ("十个月", 10),
        ("一岁半", 18),
        ("两岁三个月", 27),
        ("1岁2个月", 14),
        ("三岁", 36),
        ("3岁", 36),
        ("两岁半", 30),
        ("3岁半", 42),
        ("半岁", 6),
        ("一岁多", 12),
        ("两个多月", 2),
        ("快两岁", 23),
        ("快一岁", 11),
        ("快六个月", 5),
        ("刚满月", 1),
        ("满月", 1),
        ("百天", 3),
        ("出生二十天", 0),
        ("刚出生三天", 0),
        ("今年三月出生", 8),
        ("去年12月出生", 11),
        ("三月出生", 8),
    ],
)
def test_age_months(text: str, months: int) -> None:
    assert re.fullmatch(numerals.AGE, text), text
    assert numerals.age_months(text, TODAY) == months


@pytest.mark.parametrize(
    ("age", "today", "birth"),
    [
        (8, dt.date(2026, 11, 22), "2026-03"),
        (11, dt.date(2026, 11, 22), "2025-12"),  # across the year boundary
        (0, dt.date(2026, 1, 5), "2026-01"),
        (1, dt.date(2026, 1, 5), "2025-12"),
        (27, dt.date(2026, 2, 1), "2023-11"),
        (12, dt.date(2026, 12, 31), "2025-12"),
    ],
)
def test_birth_month_round_trips(age: int, today: dt.date, birth: str) -> None:
    assert numerals.birth_month(age, today) == birth
    assert numerals.months_since(birth, today) == age


def test_an_age_keeps_growing() -> None:
    birth = numerals.birth_month(8, TODAY)
    assert numerals.months_since(birth, dt.date(2027, 11, 22)) == 20
    assert numerals.months_since(birth, dt.date(2027, 2, 1)) == 11


@pytest.mark.parametrize(
    ("weeks", "due"),
    [(20, "2027-04"), (32, "2027-01"), (6, "2027-07"), (36, "2026-12"), (24, "2027-03"), (28, "2027-02")],
)
def test_due_month_from_weeks(weeks: int, due: str) -> None:
    assert numerals.due_month_from_weeks(weeks, TODAY) == due


@pytest.mark.parametrize(
    ("text", "today", "due"),
    [
        ("明年三月", TODAY, "2027-03"),
        ("12月底", TODAY, "2026-12"),
        ("2月中旬", TODAY, "2027-02"),  # no year: the nearest February ahead
        ("十一月", TODAY, "2026-11"),
        ("下个月", TODAY, "2026-12"),
        ("下个月", dt.date(2026, 12, 3), "2027-01"),
        ("明年五月", TODAY, "2027-05"),
        ("2027年1月", TODAY, "2027-01"),
        ("十三月", TODAY, None),
    ],
)
def test_year_month(text: str, today: dt.date, due: str | None) -> None:
    assert numerals.year_month(text, today) == due


@pytest.mark.parametrize(
    ("text", "month"),
    [("3月", 3), ("十月", 10), ("下个月", 12), ("今天", 11), ("这个月", 11), ("13月", None)],
)
def test_month_of(text: str, month: int | None) -> None:
    assert numerals.month_of(text, TODAY) == month


def test_month_of_next_month_wraps_the_year() -> None:
    assert numerals.month_of("下个月", dt.date(2026, 12, 1)) == 1
