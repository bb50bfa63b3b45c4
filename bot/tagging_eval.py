"""Offline evaluation of the tagging engine: the metrics of ../shared/eval/README.md, and predictions files.

Tags: per-tag precision / recall / F1 over rows, micro figures over (row, tag) pairs, macro F1 over
every tag in the gold labels or the predictions. Attributes: slot by slot, a wrong value is one
false positive and one false negative; `attr_exact` is the share of rows with gold attributes whose
predicted object equals the gold one. Values compare after normalisation: numbers numerically,
strings NFKC + trim + casefold.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.tagging import load_rules
from handlers.tag_extract import compile_rules, extract

__all__ = [
    "SAMPLE_DATE",
    "Labels",
    "Row",
    "Stats",
    "TagEvalResult",
    "load_utterances",
    "norm_value",
    "predict",
    "run",
    "score",
    "write_predictions",
]

SAMPLE_DATE = dt.date(2026, 11, 22)
"""The message date the public sample's relative times are resolved against."""


@dataclass(frozen=True, slots=True)
class Labels:
    """Tags and attributes of one message (gold or predicted)."""

    tags: frozenset[str] = frozenset()
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled message."""

    text: str
    labels: Labels


@dataclass(slots=True)
class Stats:
    """True positive, false positive and false negative counts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """tp / (tp + fp), 0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn), 0 when nothing was expected."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class TagEvalResult:
    """Every figure of one evaluation run."""

    per_tag: dict[str, Stats]
    micro: Stats
    macro_f1: float
    per_key: dict[str, Stats]
    attrs: Stats
    attr_exact: float
    n: int
    misses: list[tuple[str, Labels, Labels]] = field(default_factory=list)

    def summary(self) -> str:
        """The README's summary line."""
        return (
            f"TAG micro_p={self.micro.precision:.3f} micro_r={self.micro.recall:.3f} "
            f"micro_f1={self.micro.f1:.3f} macro_f1={self.macro_f1:.3f} attr_exact={self.attr_exact:.3f} "
            f"attr_p={self.attrs.precision:.3f} attr_r={self.attrs.recall:.3f} n={self.n}"
        )

    def detail_lines(self) -> list[str]:
        """One line per tag and per attribute key."""
        lines = []
        for tag in sorted(self.per_tag):
            s = self.per_tag[tag]
            lines.append(
                f"tag {tag} p={s.precision:.3f} r={s.recall:.3f} f1={s.f1:.3f} tp={s.tp} fp={s.fp} fn={s.fn}"
            )
        for key in sorted(self.per_key):
            s = self.per_key[key]
            lines.append(f"attr {key} p={s.precision:.3f} r={s.recall:.3f} tp={s.tp} fp={s.fp} fn={s.fn}")
        return lines


def norm_value(value: Any) -> Any:
    """A value as the README compares it: numbers as floats, strings NFKC-normalised, trimmed, casefolded."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().casefold()
        try:
            number = float(text)
        except ValueError:
            return text
        # "8" equals 8, but "nan" and "inf" stay words.
        return number if number == number and abs(number) != float("inf") else text
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _norm_attrs(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: norm_value(value) for key, value in attributes.items()}


def _labels(tags: str, attributes: str) -> Labels:
    tag_set = frozenset(t.strip() for t in tags.split("|") if t.strip())
    attrs = json.loads(attributes) if attributes.strip() else {}
    if not isinstance(attrs, dict):
        raise ValueError(f"attributes must be a JSON object: {attributes!r}")
    return Labels(tag_set, attrs)


def load_utterances(path: str | Path) -> list[Row]:
    """Read a `text<TAB>tags<TAB>attributes` TSV (header row, no quoting)."""
    rows: list[Row] = []
    with Path(path).open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:1]] != ["text"]:
            raise ValueError(f"{path}: expected a header text<TAB>tags<TAB>attributes")
        for line_no, cells in enumerate(reader, start=2):
            if not cells or not cells[0].strip():
                continue
            cells = [*cells, "", ""][:3]
            try:
                rows.append(Row(cells[0], _labels(cells[1], cells[2])))
            except (ValueError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{line_no}: {exc}") from exc
    return rows


def score(gold: Sequence[Row], predicted: Mapping[str, Labels]) -> TagEvalResult:
    """The README's metrics for `predicted` (text -> labels; a missing text means nothing predicted)."""
    per_tag: dict[str, Stats] = {}
    per_key: dict[str, Stats] = {}
    micro, attrs = Stats(), Stats()
    exact_rows = exact_hits = 0
    misses = []
    for row in gold:
        pred = predicted.get(row.text, Labels())
        for tag in row.labels.tags | pred.tags:
            stats = per_tag.setdefault(tag, Stats())
            if tag in row.labels.tags and tag in pred.tags:
                stats.tp += 1
                micro.tp += 1
            elif tag in pred.tags:
                stats.fp += 1
                micro.fp += 1
            else:
                stats.fn += 1
                micro.fn += 1
        want, got = _norm_attrs(row.labels.attributes), _norm_attrs(pred.attributes)
        for key in want.keys() | got.keys():
            stats = per_key.setdefault(key, Stats())
            if key in want and key in got and want[key] == got[key]:
                stats.tp += 1
                attrs.tp += 1
                continue
            if key in got:
                stats.fp += 1
                attrs.fp += 1
            if key in want:
                stats.fn += 1
                attrs.fn += 1
        if want:
            exact_rows += 1
            exact_hits += want == got
        if row.labels.tags != pred.tags or want != got:
            misses.append((row.text, row.labels, pred))
    macro = sum(s.f1 for s in per_tag.values()) / len(per_tag) if per_tag else 0.0
    return TagEvalResult(
        per_tag=per_tag,
        micro=micro,
        macro_f1=macro,
        per_key=per_key,
        attrs=attrs,
        attr_exact=exact_hits / exact_rows if exact_rows else 0.0,
        n=len(gold),
        misses=misses,
    )


def predict(
    texts: Iterable[str], rules_path: str | Path, *, today: dt.date
) -> tuple[dict[str, Labels], list[float]]:
    """Run the engine on every text; (text -> labels as of `today`, per-message seconds)."""
    compiled = compile_rules(load_rules(rules_path))
    out: dict[str, Labels] = {}
    timings: list[float] = []
    for text in texts:
        started = time.perf_counter()
        result = extract(text, compiled, today=today)
        timings.append(time.perf_counter() - started)
        out[text] = Labels(frozenset(result.tags), result.as_of(today))
    return out, timings


def write_predictions(path: str | Path, predicted: Mapping[str, Labels], order: Sequence[str]) -> None:
    """Write `text<TAB>tags<TAB>attributes` in the utterances file's format."""
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        fh.write("text\ttags\tattributes\n")
        for text in order:
            labels = predicted.get(text, Labels())
            attrs = json.dumps(dict(labels.attributes), ensure_ascii=False)
            fh.write(f"{text}\t{'|'.join(sorted(labels.tags))}\t{attrs}\n")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    rules_path: str | Path,
    utterances_path: str | Path,
    *,
    today: dt.date = SAMPLE_DATE,
    predictions_out: str | Path | None = None,
    out: TextIO,
    show_misses: bool = False,
) -> TagEvalResult:
    """Evaluate, print the summary line then per-tag lines to `out`, optionally write predictions."""
    gold = load_utterances(utterances_path)
    texts = [row.text for row in gold]
    predicted, timings = predict(texts, rules_path, today=today)
    result = score(gold, predicted)
    print(result.summary(), file=out)
    for line in result.detail_lines():
        print(line, file=out)
    p50, p99 = (_percentile(timings, q) * 1000 for q in (0.5, 0.99))
    print(f"latency p50={p50:.3f}ms p99={p99:.3f}ms today={today.isoformat()}", file=out)
    if show_misses:
        for text, want, got in result.misses:
            print(
                f"miss {text} | want {'|'.join(sorted(want.tags))} {dict(want.attributes)} "
                f"| got {'|'.join(sorted(got.tags))} {dict(got.attributes)}",
                file=out,
            )
    if predictions_out is not None:
        write_predictions(predictions_out, predicted, texts)
    return result
