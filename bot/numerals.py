"""Chinese numerals, quantities, ages and months as customers type them, and the calendar arithmetic on them.

Each value kind has a regex fragment (to embed in ops' patterns as a placeholder) and a parser that
turns the matched text into a value. Relative expressions take the message date explicitly; nothing
here reads the clock.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

__all__ = [
    "AGE",
    "MONTH",
    "NUMBER",
    "WEEKS",
    "YEAR_MONTH",
    "add_months",
    "age_months",
    "birth_month",
    "due_month_from_weeks",
    "month_of",
    "months_since",
    "parse_int",
    "parse_quantity",
    "year_month",
]

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}

# One numeral: Arabic digits (an optional Chinese unit after them, "3千"), or Chinese digits and units.
_N = r"(?:[0-9]+(?:\.[0-9]+)?[十百千万]?|[零〇一二两俩三四五六七八九十百千万]+)"
_RANGE_SEP = r"[到至~\-－]"

NUMBER = rf"{_N}(?:{_RANGE_SEP}{_N})?(?:来|多|余|左右|上下)?"
"""A quantity: "500", "两百", "两三百", "三四十", "二十来", "一千左右", "10-20"."""

AGE = (
    r"(?:快要?|马上就?|快满)?"
    rf"(?:{_N}周?岁(?:半|零?{_N}个?月|多)?|{_N}个(?:多|半)?月|半岁|刚?满月|百天|(?:刚出生|出生){_N}天"
    rf"|(?:今年|去年|前年)?{_N}月份?出生)"
)
"""A child's age: "八个月", "一岁半", "两岁三个月", "3岁", "快两岁", "刚满月", "百天", "去年12月出生"."""

MONTH = rf"(?:{_N}月份?|下个?月|这个月|本月|今天|今儿)"
"""A month of the year: "3月", "十月", "下个月", "今天"."""

YEAR_MONTH = rf"(?:(?:明年|今年|后年|[0-9]{{4}}年)?{_N}月(?:份|底|初|中旬|上旬|下旬|中|末)?|下个?月)"
"""A month on the calendar ahead: "明年三月", "12月底", "2月中旬", "下个月"."""

WEEKS = rf"{_N}(?:周|个?星期)(?!岁)"
"""Weeks of pregnancy: "20周", "二十八周"."""

_SUFFIX = re.compile(r"(?:来|多|余|左右|上下)$")
_ADJACENT = re.compile(r"^([一二两三四五六七八九])([一二三四五六七八九])([十百千万]?)$")


def parse_int(text: str) -> int | None:
    """The integer a numeral means: "十二" -> 12, "两百" -> 200, "3千" -> 3000, "1005" -> 1005."""
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([十百千万]?)", text)
    if match:
        value = float(match.group(1)) * (_UNITS[match.group(2)] if match.group(2) else 1)
        return int(value) if value == int(value) else None
    total, section, digit = 0, 0, None
    for char in text:
        if char in _DIGITS:
            # Digits side by side ("二零二六") read as positional digits.
            digit = _DIGITS[char] if digit is None else digit * 10 + _DIGITS[char]
        elif char in _UNITS:
            unit = _UNITS[char]
            if unit == 10000:
                total = (total + section + (digit or 0)) * unit
                section = 0
            else:
                # "十二" has no leading digit: 十 alone means one ten.
                section += (1 if digit is None else digit) * unit
            digit = None
        else:
            return None
    return total + section + (digit or 0)


def parse_quantity(text: str) -> int | None:
    """A spoken quantity with ranges taken at the top: "两三百" -> 300, "二十来" -> 20, "10到20" -> 20."""
    text = unicodedata.normalize("NFKC", text).strip()
    text = _SUFFIX.sub("", text)
    parts = re.split(_RANGE_SEP, text)
    if len(parts) == 2:
        return parse_int(parts[1])
    adjacent = _ADJACENT.match(text)
    if adjacent:
        # "两三百" / "三四十": two digits before one unit are a range; customers mean the upper end.
        unit = _UNITS.get(adjacent.group(3), 1)
        return _DIGITS[adjacent.group(2)] * unit
    return parse_int(text)


def add_months(year: int, month: int, delta: int) -> tuple[int, int]:
    """(year, month) moved by `delta` months."""
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def _ym(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def birth_month(age: int, today: dt.date) -> str:
    """The birth month (YYYY-MM) of a child `age` full months old on `today`."""
    return _ym(*add_months(today.year, today.month, -age))


def months_since(year_month_text: str, day: dt.date) -> int:
    """Full months from a YYYY-MM month to `day`'s month (an age in months when given a birth month)."""
    year, month = (int(part) for part in year_month_text.split("-"))
    return (day.year * 12 + day.month) - (year * 12 + month)


def due_month_from_weeks(weeks: int, today: dt.date) -> str:
    """The due month (YYYY-MM) of a pregnancy `weeks` along on `today`: 40 weeks in all."""
    due = today + dt.timedelta(days=(40 - weeks) * 7)
    return _ym(due.year, due.month)


def age_months(text: str, today: dt.date) -> int | None:
    """Full months of a child's age in `text` (an AGE match); None when it is not an age."""
    text = unicodedata.normalize("NFKC", text).strip()
    near = re.match(r"快要?|马上就?|快满", text)
    body = text[near.end() :] if near else text
    months = _age_body(body, today)
    if months is None:
        return None
    # "快两岁" is not yet two: the customer means the month before the birthday.
    return max(months - 1, 0) if near else months


def _age_body(body: str, today: dt.date) -> int | None:
    if body in ("满月", "刚满月"):
        return 1
    if body == "百天":
        return 3
    if body == "半岁":
        return 6
    if body.endswith("天"):
        return 0  # under a month old
    born = re.fullmatch(rf"(今年|去年|前年)?({_N})月份?出生", body)
    if born:
        month = parse_int(born.group(2))
        if month is None or not 1 <= month <= 12:
            return None
        back = {"今年": 0, "去年": 1, "前年": 2}.get(born.group(1) or "")
        year = today.year - back if back is not None else today.year
        if back is None and month > today.month:
            year -= 1  # "三月出生" said in November: the March just gone
        months = (today.year * 12 + today.month) - (year * 12 + month)
        return months if months >= 0 else None
    years = re.fullmatch(rf"({_N})周?岁(半|零?({_N})个?月|多)?", body)
    if years:
        count = parse_int(years.group(1))
        if count is None:
            return None
        extra = 0
        if years.group(2) == "半":
            extra = 6
        elif years.group(3):
            extra = parse_int(years.group(3)) or 0
        return count * 12 + extra
    months = re.fullmatch(rf"({_N})个(多|半)?月", body)
    if months:
        count = parse_int(months.group(1))
        return count
    return None


def month_of(text: str, today: dt.date) -> int | None:
    """The month of the year (1-12) in a MONTH match: "3月" -> 3, "下个月" -> next month."""
    text = unicodedata.normalize("NFKC", text).strip()
    if text in ("今天", "今儿", "这个月", "本月"):
        return today.month
    if text.startswith("下"):
        return add_months(today.year, today.month, 1)[1]
    match = re.fullmatch(rf"({_N})月份?", text)
    month = parse_int(match.group(1)) if match else None
    return month if month is not None and 1 <= month <= 12 else None


def year_month(text: str, today: dt.date) -> str | None:
    """The month (YYYY-MM) of a YEAR_MONTH match; without a year, the nearest one not before today."""
    text = unicodedata.normalize("NFKC", text).strip()
    if text.startswith("下"):
        return _ym(*add_months(today.year, today.month, 1))
    match = re.fullmatch(rf"(明年|今年|后年|([0-9]{{4}})年)?({_N})月.*", text)
    if not match:
        return None
    month = parse_int(match.group(3))
    if month is None or not 1 <= month <= 12:
        return None
    said = match.group(1)
    if said == "明年":
        year = today.year + 1
    elif said == "后年":
        year = today.year + 2
    elif said == "今年":
        year = today.year
    elif match.group(2):
        year = int(match.group(2))
    else:
        year = today.year if month >= today.month else today.year + 1
    return _ym(year, month)
