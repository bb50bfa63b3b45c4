"""Offline evaluation of the FAQ matcher: metrics from ../shared/eval/README.md, band sweeps, predictions."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from handlers.faq_match import Band, FaqDoc, FaqIndex, build_index, decide

__all__ = [
    "EvalResult",
    "Prediction",
    "best_of_sweep",
    "evaluate",
    "load_docs",
    "load_queries",
    "run",
    "score_predictions",
    "sweep",
    "write_predictions",
]

SILENT_ID = "-"
# The README's points per row: (band, right id) for in-domain rows, band for rows that expect silence.
_POINTS_RIGHT = {"answer": 1.0, "suggest": 0.5, "silent": 0.0}
_POINTS_WRONG = {"answer": -2.0, "suggest": -0.25, "silent": 0.0}
MAX_FALSE_TRIGGER = 0.025


@dataclass(frozen=True, slots=True)
class Prediction:
    """One row of a predictions file."""

    query: str
    predicted: str
    band: Band


@dataclass(slots=True)
class EvalResult:
    """Metrics of one run over a queries file."""

    top1: float
    false_trigger: float
    wrong_answer: float
    net: float
    n: int
    bands: dict[str, int] = field(default_factory=dict)
    latency_ms: tuple[float, float] = (0.0, 0.0)

    def summary(self) -> str:
        """The README's summary line."""
        return (
            f"FAQ top1={self.top1:.3f} false_trigger={self.false_trigger:.3f} "
            f"wrong_answer={self.wrong_answer:.3f} net={self.net:.3f} n={self.n}"
        )


def _load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _strings(value: Any) -> tuple[str, ...]:
    """A YAML scalar or list as a tuple of non-empty strings."""
    if value is None:
        return ()
    if isinstance(value, str | int | float):
        value = [value]
    return tuple(str(v).strip() for v in value if str(v).strip())


def load_docs(path: str | Path) -> tuple[list[FaqDoc], dict[str, list[str]], list[str]]:
    """Read a FAQ library (`faqs:` list) and an optional sibling synonyms.yaml into FaqDocs."""
    path = Path(path)
    data = _load_yaml(path) or {}
    docs: list[FaqDoc] = []
    for item in data.get("faqs") or ():
        if not isinstance(item, Mapping) or item.get("enabled", True) is False or not item.get("id"):
            continue
        answer = item.get("answer")
        docs.append(
            FaqDoc(
                id=str(item["id"]),
                questions=_strings(item.get("questions")),
                keywords=_strings(item.get("keywords")),
                # Only plain-text answers are evidence; structured answers (attachments) are skipped.
                answer=answer if isinstance(answer, str) else "",
            )
        )
    synonyms: dict[str, list[str]] = {}
    brand_words: list[str] = []
    if data.get("brand"):
        brand_words.append(str(data["brand"]))
    syn_path = path.with_name("synonyms.yaml")
    if syn_path.is_file():
        syn = _load_yaml(syn_path) or {}
        brand_words.extend(_strings(syn.get("brand_words")))
        for canonical, variants in (syn.get("synonyms") or {}).items():
            synonyms[str(canonical)] = list(_strings(variants))
    return docs, synonyms, brand_words


def load_queries(path: str | Path) -> list[tuple[str, str]]:
    """Read a `query<TAB>expect` TSV (header row, no quoting)."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or [c.strip() for c in rows[0][:2]] != ["query", "expect"]:
        raise ValueError(f"{path}: expected a header row 'query<TAB>expect'")
    return [(r[0], r[1].strip()) for r in rows[1:] if len(r) >= 2 and r[0]]


def score_predictions(
    gold: Sequence[tuple[str, str]], predictions: Mapping[str, tuple[str, Band]]
) -> EvalResult:
    """Compute top1, false_trigger, wrong_answer and net exactly as the eval README defines them."""
    in_domain = [(q, e) for q, e in gold if e != SILENT_ID]
    silent_rows = [q for q, e in gold if e == SILENT_ID]
    bands = {"answer": 0, "suggest": 0, "silent": 0}
    top1 = wrong = 0
    points = 0.0
    false_trigger = 0
    for query, expect in gold:
        predicted, chosen = predictions.get(query, (SILENT_ID, "silent"))
        bands[chosen] += 1
        if expect == SILENT_ID:
            points += _POINTS_WRONG[chosen]
            false_trigger += chosen == "answer"
            continue
        right = predicted == expect
        top1 += right
        wrong += chosen == "answer" and not right
        points += _POINTS_RIGHT[chosen] if right else _POINTS_WRONG[chosen]
    n_in = len(in_domain) or 1
    return EvalResult(
        top1=top1 / n_in,
        false_trigger=false_trigger / (len(silent_rows) or 1),
        wrong_answer=wrong / n_in,
        net=points / n_in,
        n=len(gold),
        bands=bands,
    )


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def predict(
    index: FaqIndex,
    queries: Iterable[str],
    *,
    answer: float,
    suggest: float,
    menu_size: int = 3,
    max_chars: int = 300,
) -> tuple[list[Prediction], list[float]]:
    """Run `decide` on every query; return the predictions and each query's latency in ms."""
    predictions: list[Prediction] = []
    latencies: list[float] = []
    for query in queries:
        start = time.perf_counter()
        decision = decide(
            index, query, answer=answer, suggest=suggest, menu_size=menu_size, max_chars=max_chars
        )
        latencies.append((time.perf_counter() - start) * 1000)
        predicted = decision.best.id if decision.best else SILENT_ID
        predictions.append(Prediction(query, predicted, decision.band))
    return predictions, latencies


def evaluate(
    index: FaqIndex,
    gold: Sequence[tuple[str, str]],
    *,
    answer: float,
    suggest: float,
    menu_size: int = 3,
    max_chars: int = 300,
) -> tuple[EvalResult, list[Prediction]]:
    """Predict every gold query and score the predictions."""
    preds, latencies = predict(
        index, (q for q, _ in gold), answer=answer, suggest=suggest, menu_size=menu_size, max_chars=max_chars
    )
    result = score_predictions(gold, {p.query: (p.predicted, p.band) for p in preds})
    result.latency_ms = (_percentile(latencies, 50), _percentile(latencies, 99))
    return result, preds


def write_predictions(path: str | Path, predictions: Iterable[Prediction]) -> None:
    """Write `query<TAB>predicted<TAB>band` with a header row."""
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        writer.writerow(["query", "predicted", "band"])
        for p in predictions:
            writer.writerow([p.query, p.predicted, p.band])


def default_grid() -> list[tuple[float, float]]:
    """The (answer, suggest) pairs a sweep tries."""
    answers = [round(0.50 + 0.02 * i, 2) for i in range(21)]  # 0.50 .. 0.90
    suggests = [round(0.25 + 0.05 * i, 2) for i in range(8)]  # 0.25 .. 0.60
    return [(a, s) for a in answers for s in suggests if s < a]


def sweep(
    index: FaqIndex,
    gold: Sequence[tuple[str, str]],
    grid: Iterable[tuple[float, float]] | None = None,
    *,
    menu_size: int = 3,
    max_chars: int = 300,
) -> list[tuple[float, float, EvalResult]]:
    """Evaluate every (answer, suggest) pair of the grid."""
    return [
        (a, s, evaluate(index, gold, answer=a, suggest=s, menu_size=menu_size, max_chars=max_chars)[0])
        for a, s in (grid if grid is not None else default_grid())
    ]


def best_of_sweep(
    results: Sequence[tuple[float, float, EvalResult]], max_false_trigger: float = MAX_FALSE_TRIGGER
) -> tuple[float, float, EvalResult] | None:
    """The pair with the highest net among those within the false-trigger limit (ties: higher answer)."""
    allowed = [r for r in results if r[2].false_trigger <= max_false_trigger + 1e-9]
    if not allowed:
        return None
    return max(allowed, key=lambda r: (round(r[2].net, 6), r[0], r[1]))


def run(
    library: str | Path,
    queries: str | Path,
    *,
    answer: float,
    suggest: float,
    menu_size: int = 3,
    max_chars: int = 300,
    predictions_out: str | Path | None = None,
    do_sweep: bool = False,
    out: TextIO,
) -> EvalResult:
    """Load, evaluate, print the summary line, per-band counts and latency (and a sweep); return metrics."""
    docs, synonyms, brand_words = load_docs(library)
    gold = load_queries(queries)
    start = time.perf_counter()
    index = build_index(docs, synonyms=synonyms, brand_words=brand_words)
    build_s = time.perf_counter() - start
    result, preds = evaluate(
        index, gold, answer=answer, suggest=suggest, menu_size=menu_size, max_chars=max_chars
    )
    if predictions_out is not None:
        write_predictions(predictions_out, preds)
    print(result.summary(), file=out)
    b = result.bands
    print(
        f"bands answer={b['answer']} suggest={b['suggest']} silent={b['silent']} "
        f"(answer>={answer:g} suggest>={suggest:g})",
        file=out,
    )
    print(
        f"latency p50={result.latency_ms[0]:.3f}ms p99={result.latency_ms[1]:.3f}ms "
        f"index_build={build_s:.2f}s entries={len(docs)}",
        file=out,
    )
    if do_sweep:
        results = sweep(index, gold, menu_size=menu_size, max_chars=max_chars)
        print("sweep answer suggest top1 false_trigger wrong_answer net", file=out)
        for a, s, r in results:
            print(
                f"sweep {a:.2f} {s:.2f} {r.top1:.3f} {r.false_trigger:.3f} {r.wrong_answer:.3f} {r.net:.3f}",
                file=out,
            )
        best = best_of_sweep(results)
        if best is None:
            print(f"sweep best: none with false_trigger <= {MAX_FALSE_TRIGGER}", file=out)
        else:
            a, s, r = best
            print(f"sweep best answer={a:.2f} suggest={s:.2f}: {r.summary()}", file=out)
    return result
