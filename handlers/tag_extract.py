"""The tagging engine: a customer's message and the brand's rules -> tags, attributes, lead score, reasons.

Pure and synchronous: `extract(text, rules, *, today)` reads no clock and no state. Rules are
compiled once (`compile_rules`, cached on the rules object): every keyword, negator, scope word and
every pattern's literal trigger go into one character trie, so a message is scanned once, and a
regex only runs when its trigger occurs in the message (or when it has none).

How a hit is judged, in order: the text is normalised (`bot.text.normalize`: NFKC, case, spaces for
punctuation, particles and emoji dropped) and cut into clauses at spaces. A hit does not count when
a negator ends right before it in its clause (`我不是宝妈`, `不喜欢美式`; question forms such as
`有没有` are masked first), when its clause speaks of the past or a hypothetical (`以前`, `要是…的话`),
or, for `scope: self` rules, when its clause is about someone else (`我姐姐家孩子两岁`).

Attributes that age are stored as what they mean: an `age` extractor stores the birth month
(YYYY-MM) under its key; `Extraction.as_of(day)` reports the age in months under `age_key`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import re._parser as _sre_parse  # private, but the only way to read a regex's literals
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot import numerals
from bot.tagging import PLACEHOLDERS, AttributeSpec, TaggingRules, TagRule, expand
from bot.text import normalize

__all__ = ["CompiledRules", "Extraction", "Reason", "compile_rules", "extract", "preview"]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a tag or attribute was given: which rule, on which words."""

    tag_or_attr: str
    rule_id: str
    matched_text: str


@dataclass(frozen=True, slots=True)
class Extraction:
    """What one message says about the customer."""

    tags: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    score: int = 0
    reasons: tuple[Reason, ...] = ()
    ages: tuple[tuple[str, str], ...] = ()
    """(stored birth-month key, reported age key) pairs, for `as_of`."""

    def as_of(self, day: dt.date) -> dict[str, Any]:
        """The attributes as they read on `day`: a stored birth month becomes the age in months."""
        out = dict(self.attributes)
        for stored, reported in self.ages:
            if stored in out:
                out[reported] = numerals.months_since(out.pop(stored), day)
        return out


# ------------------------------------------------------------------------------------------ compile

_NEG, _QUESTION, _IRREALIS, _OTHERS = "neg", "question", "irrealis", "others"


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    triggers: tuple[str, ...] | None  # literals the pattern cannot match without; None: always run

    def may_match(self, found: Mapping[str, Any]) -> bool:
        """False when no trigger occurs in the message, so the regex need not run."""
        return self.triggers is None or any(t in found for t in self.triggers)


@dataclass(frozen=True, slots=True)
class _Rule:
    spec: TagRule
    any: frozenset[str]
    all: tuple[frozenset[str], ...]
    none: frozenset[str]
    patterns: tuple[_Pattern, ...]
    others: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Attr:
    spec: AttributeSpec
    patterns: tuple[_Pattern, ...]
    none: frozenset[str]
    clause_none: frozenset[str]
    others: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """Rules ready to run: one trie for every literal, patterns gated by their triggers."""

    rules: TaggingRules
    trie: dict[str, Any]
    negation: re.Pattern[str] | None
    questions: re.Pattern[str] | None
    irrealis: frozenset[str]
    others: frozenset[str]
    tag_rules: tuple[_Rule, ...]
    by_word: Mapping[str, tuple[int, ...]]
    always: tuple[int, ...]
    attrs: tuple[_Attr, ...]
    ages: tuple[tuple[str, str], ...]
    order: Mapping[str, int]


_END = "\0"  # trie key holding the words that end at a node


def _norm_word(word: str) -> str:
    return normalize(word) or word.casefold()


def _literal_runs(items: Iterable[Any]) -> list[str]:
    """Runs of consecutive literal characters in a parsed regex sequence."""
    runs, run = [], ""
    for op, arg in items:
        if str(op) == "LITERAL":
            run += chr(arg)
            continue
        if run:
            runs.append(run)
        run = ""
    if run:
        runs.append(run)
    return runs


def _branch_triggers(op: Any, arg: Any) -> tuple[str, ...] | None:
    """For `(?:今天|明天)` at the top level: one leading literal per branch, or None."""
    if str(op) == "SUBPATTERN":
        inner = list(arg[-1])
        if len(inner) != 1:
            return None
        op, arg = inner[0]
    if str(op) != "BRANCH":
        return None
    out = []
    for branch in arg[1]:
        items = list(branch)
        if not items or str(items[0][0]) != "LITERAL":
            return None
        out.append(_literal_runs(items)[0])
    return tuple(out)


def _triggers(pattern: str) -> tuple[str, ...] | None:
    """Literals one of which every match of `pattern` contains; None when there are none to rely on."""
    try:
        tree = list(_sre_parse.parse(pattern, re.IGNORECASE))
    except re.error:
        return None
    runs = _literal_runs(tree)
    if runs:
        return (max(runs, key=len),)
    for op, arg in tree:
        branches = _branch_triggers(op, arg)
        if branches:
            return branches
    return None


def _compile_pattern(pattern: str, placeholders: Mapping[str, str]) -> _Pattern:
    source = expand(pattern, placeholders)
    regex = re.compile(source, re.IGNORECASE)
    triggers = _triggers(source)
    return _Pattern(regex, tuple(_norm_word(t) for t in triggers) if triggers else None)


def _words(words: Iterable[str]) -> frozenset[str]:
    return frozenset(_norm_word(w) for w in words)


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def compile_rules(rules: TaggingRules) -> CompiledRules:
    """Build the trie and regexes for `rules` (cached on the rules object: compile once per snapshot)."""
    cached = rules._compiled
    if isinstance(cached, CompiledRules):
        return cached
    language = rules.language
    tag_rules = []
    for spec in rules.rules:
        groups = tuple(_words([g] if isinstance(g, str) else g) for g in spec.all)
        tag_rules.append(
            _Rule(
                spec=spec,
                any=_words(spec.any),
                all=groups,
                none=_words(spec.none),
                patterns=tuple(_compile_pattern(p, PLACEHOLDERS) for p in spec.patterns),
                others=_words((*language.others, *spec.others)),
            )
        )
    attrs = []
    ages = []
    for a_spec in rules.attributes:
        placeholders = a_spec.placeholders()
        attrs.append(
            _Attr(
                spec=a_spec,
                patterns=tuple(_compile_pattern(p, placeholders) for p in a_spec.patterns),
                none=_words(a_spec.none),
                clause_none=_words(a_spec.clause_none),
                others=_words((*language.others, *a_spec.others)),
            )
        )
        if a_spec.extractor == "age" and a_spec.age_key and (a_spec.key, a_spec.age_key) not in ages:
            ages.append((a_spec.key, a_spec.age_key))

    vocabulary: set[str] = set(_words(language.irrealis)) | set(_words(language.others))
    for rule in tag_rules:
        vocabulary |= rule.any | rule.none | rule.others
        vocabulary.update(*rule.all)
        for p in rule.patterns:
            vocabulary.update(p.triggers or ())
    for attr in attrs:
        vocabulary |= attr.none | attr.clause_none | attr.others
        for p in attr.patterns:
            vocabulary.update(p.triggers or ())
    # Which rules a word can wake: a message only evaluates rules whose words (or triggers) occur in it.
    by_word: dict[str, set[int]] = {}
    always: list[int] = []
    for index, rule in enumerate(tag_rules):
        words = set(rule.any).union(*rule.all)
        gated = True
        for p in rule.patterns:
            if p.triggers is None:
                gated = False
            words.update(p.triggers or ())
        if not gated or not words:
            always.append(index)
        for word in words:
            by_word.setdefault(word, set()).add(index)
    trie: dict[str, Any] = {}
    for word in vocabulary:
        if not word:
            continue
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[_END] = word

    negators = [_norm_word(w) for w in language.negators]
    questions = [_norm_word(w) for w in language.questions]
    gap = language.negation_gap
    compiled = CompiledRules(
        rules=rules,
        trie=trie,
        # A negator, then at most `gap` characters that are not a clause break, then the hit.
        negation=re.compile(f"(?:{_alternation(negators)})[^ ]{{0,{gap}}}$") if negators else None,
        questions=re.compile(_alternation(questions)) if questions else None,
        irrealis=_words(language.irrealis),
        others=_words(language.others),
        tag_rules=tuple(tag_rules),
        by_word={word: tuple(sorted(indices)) for word, indices in by_word.items()},
        always=tuple(always),
        attrs=tuple(attrs),
        ages=tuple(ages),
        order={tag: i for i, tag in enumerate(rules.tags())},
    )
    # Frozen models still take private attributes: the compiled form lives and dies with its rules.
    rules._compiled = compiled
    return compiled


# ------------------------------------------------------------------------------------------- extract


class _Message:
    """A normalised message with its clauses, the words found in it and the masks for negation."""

    __slots__ = ("clause_words", "found", "masked", "starts", "text")

    def __init__(self, text: str, trie: Mapping[str, Any], questions: re.Pattern[str] | None) -> None:
        self.text = text
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == " "]
        found: dict[str, list[int]] = {}
        n = len(text)
        for i in range(n):
            node = trie.get(text[i])
            j = i + 1
            while node is not None:
                word = node.get(_END)
                if word is not None:
                    found.setdefault(word, []).append(i)
                if j >= n:
                    break
                node = node.get(text[j])
                j += 1
        self.found = found
        clause_words: dict[int, set[str]] = {}
        for word, positions in found.items():
            for pos in positions:
                clause_words.setdefault(self.clause_of(pos), set()).add(word)
        self.clause_words = clause_words
        # Same length as the text, so positions still line up: 有没有 is a question, not a negation.
        self.masked = questions.sub(lambda m: "#" * len(m.group(0)), text) if questions else text

    def clause_of(self, pos: int) -> int:
        """Index of the clause holding position `pos`."""
        return bisect.bisect_right(self.starts, pos) - 1

    def words_in(self, first: int, last: int) -> set[str]:
        """Words found in clauses first..last."""
        out: set[str] = set()
        for index in range(first, last + 1):
            out |= self.clause_words.get(index, set())
        return out


def _counts(
    msg: _Message,
    compiled: CompiledRules,
    start: int,
    end: int,
    *,
    negation: bool,
    others: frozenset[str] | None,
    clause_none: frozenset[str] = frozenset(),
) -> bool:
    """True when a hit at [start, end) speaks of the customer, now, affirmatively."""
    first, last = msg.clause_of(start), msg.clause_of(max(start, end - 1))
    words = msg.words_in(first, last)
    if clause_none and words & clause_none:
        return False
    if negation:
        if words & compiled.irrealis:
            return False
        if compiled.negation is not None and compiled.negation.search(msg.masked, msg.starts[first], start):
            return False
    return not (others and words & others)


def _hit(msg: _Message, compiled: CompiledRules, words: Iterable[str], rule: _Rule) -> tuple[str, int] | None:
    """The first keyword of `words` with an occurrence that counts, and where."""
    best: tuple[str, int] | None = None
    for word in words:
        for pos in msg.found.get(word, ()):
            ok = _counts(
                msg,
                compiled,
                pos,
                pos + len(word),
                negation=rule.spec.negation,
                others=rule.others if rule.spec.scope == "self" else None,
            )
            if ok and (best is None or pos < best[1]):
                best = (word, pos)
                break
    return best


def _pattern_hit(msg: _Message, compiled: CompiledRules, rule: _Rule) -> str | None:
    for pattern in rule.patterns:
        if not pattern.may_match(msg.found):
            continue
        for match in pattern.regex.finditer(msg.text):
            if _counts(
                msg,
                compiled,
                match.start(),
                match.end(),
                negation=rule.spec.negation,
                others=rule.others if rule.spec.scope == "self" else None,
            ):
                return match.group(0)
    return None


def _parse_value(spec: AttributeSpec, raw: str, today: dt.date) -> Any:
    """The value an extractor reads from its `{value}` match; None when it does not parse."""
    kind = spec.extractor
    if kind == "age":
        return numerals.age_months(raw, today)
    if kind == "number":
        return numerals.parse_quantity(raw)
    if kind == "month":
        return numerals.month_of(raw, today)
    if kind == "year_month":
        return numerals.year_month(raw, today)
    if kind == "pregnancy_weeks":
        weeks = numerals.parse_int(re.sub(r"(?:周|个?星期)$", "", raw))
        return numerals.due_month_from_weeks(weeks, today) if weeks is not None and 1 <= weeks <= 42 else None
    return raw  # choice: the value as listed


def _read_attribute(
    msg: _Message, compiled: CompiledRules, attr: _Attr, today: dt.date
) -> tuple[Any, str] | None:
    """(value, matched text) of one attribute spec, or None."""
    spec = attr.spec
    if attr.none and not attr.none.isdisjoint(msg.found):
        return None
    candidates: list[tuple[Any, str]] = []
    for pattern in attr.patterns:
        if not pattern.may_match(msg.found):
            continue
        for match in pattern.regex.finditer(msg.text):
            if not _counts(
                msg,
                compiled,
                match.start(),
                match.end(),
                negation=spec.negation,
                others=attr.others if spec.scope == "self" else None,
                clause_none=attr.clause_none,
            ):
                continue
            value = _parse_value(spec, match.group("value"), today)
            if value is not None:
                candidates.append((value, match.group(0)))
    if not candidates:
        return None
    if spec.pick == "last":
        return candidates[-1]
    if spec.pick in ("min", "max"):
        pick = min if spec.pick == "min" else max
        return pick(candidates, key=lambda c: c[0])
    return candidates[0]


def _in_range(spec: AttributeSpec, value: Any) -> bool:
    if not isinstance(value, int | float):
        return True
    return (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)


def extract(text: str, rules: CompiledRules | TaggingRules, *, today: dt.date) -> Extraction:
    """Tags, attributes, lead score and reasons for one customer message dated `today`."""
    compiled = rules if isinstance(rules, CompiledRules) else compile_rules(rules)
    msg = _Message(normalize(text), compiled.trie, compiled.questions)
    reasons: list[Reason] = []
    score = 0

    # Attributes first: tag rules may depend on them (`when` / `unless`). `raw` keeps values outside
    # an attribute's range too, so that "儿子七岁了" can stop a 宝妈 rule without storing the age.
    attributes: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for attr in compiled.attrs:
        spec = attr.spec
        if spec.key in raw:
            continue  # an earlier spec for the same key already read it
        found = _read_attribute(msg, compiled, attr, today)
        if found is None:
            continue
        value, matched = found
        raw[spec.key] = value
        if not _in_range(spec, value):
            continue
        attributes[spec.key] = numerals.birth_month(value, today) if spec.extractor == "age" else value
        reasons.append(Reason(spec.key, spec.id, matched))
        score += spec.points

    tags: set[str] = set()
    candidates = set(compiled.always)
    for word in msg.found:
        candidates.update(compiled.by_word.get(word, ()))
    for index in sorted(candidates):
        rule = compiled.tag_rules[index]
        spec = rule.spec
        if rule.none and not rule.none.isdisjoint(msg.found):
            continue
        if spec.when is not None and not spec.when.holds(_number(raw.get(spec.when.key))):
            continue
        if spec.unless is not None and spec.unless.holds(_number(raw.get(spec.unless.key))):
            continue
        evidence: list[str] = []
        if rule.any or rule.patterns:
            hit = _hit(msg, compiled, rule.any, rule) if rule.any else None
            matched = hit[0] if hit else _pattern_hit(msg, compiled, rule)
            if matched is None:
                continue
            evidence.append(matched)
        ok = True
        for group in rule.all:
            hit = _hit(msg, compiled, group, rule)
            if hit is None:
                ok = False
                break
            evidence.append(hit[0])
        if not ok:
            continue
        if spec.when is not None and not evidence:
            evidence.append(f"{spec.when.key}={raw[spec.when.key]}")
        reasons.append(Reason(spec.tag, spec.id, "+".join(evidence)))
        score += spec.points
        tags.add(spec.tag)

    ordered = tuple(sorted(tags, key=lambda t: compiled.order.get(t, len(compiled.order))))
    return Extraction(ordered, attributes, score, tuple(reasons), compiled.ages)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def preview(text: str, rules: CompiledRules | TaggingRules, *, today: dt.date) -> str:
    """A human-readable account of what `extract` finds in `text` and why."""
    result = extract(text, rules, today=today)
    lines = [
        "tags: " + (", ".join(result.tags) or "-"),
        "attributes: " + (", ".join(f"{k}={v}" for k, v in result.attributes.items()) or "-"),
    ]
    if result.ages:
        reported = result.as_of(today)
        ages = [f"{age}={reported[age]}" for _, age in result.ages if age in reported]
        if ages:
            lines.append(f"as of {today.isoformat()}: " + ", ".join(ages))
    lines.append(f"score: {result.score}")
    lines.append("why:")
    lines.extend(f"  {r.tag_or_attr} <- {r.rule_id}: {r.matched_text}" for r in result.reasons)
    if not result.reasons:
        lines.append("  nothing matched")
    return "\n".join(lines)
