"""Tagging eval: README metric math on a tiny file, the public-sample targets, the held-out set, the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

import pytest

from bot.cli_tagging import add_tagging_eval_command, cmd_tagging_eval, preview_tagging
from bot.tagging_eval import Labels, load_utterances, norm_value, predict, score, write_predictions

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "eval" / "tagging"
QIMU = ROOT / "tests/fixtures/tagging/qimu_rules.yaml"
XIAOHE = ROOT / "content_library/tagging.yaml"
HELD_OUT = ROOT / "tests/fixtures/tagging/xiaohe_utterances.tsv"
needs_sample = pytest.mark.skipif(
    not (SAMPLE / "utterances.tsv").is_file(), reason="shared eval sample absent"
)
SUMMARY = re.compile(
    r"TAG micro_p=\d\.\d{3} micro_r=\d\.\d{3} micro_f1=\d\.\d{3} macro_f1=\d\.\d{3} "
    r"attr_exact=\d\.\d{3} attr_p=\d\.\d{3} attr_r=\d\.\d{3} n=\d+"
)
TINY = 'text\ttags\tattributes\na\tA|B\t{"x": 8}\nb\tA\t{"y": "杭州"}\nc\t\t{}\n'


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.tsv"
    path.write_text(TINY, encoding="utf-8")
    return path


def test_metric_math_on_a_tiny_file(tiny: Path) -> None:
    gold = load_utterances(tiny)
    predicted = {
        "a": Labels(frozenset({"A"}), {"x": "8"}),  # "8" equals 8; B missed
        "b": Labels(frozenset({"A", "C"}), {"y": "杭州市"}),  # C invented; 杭州市 is not 杭州
        # "c" missing: counts as no tags and no attributes
    }
    result = score(gold, predicted)
    assert (result.micro.tp, result.micro.fp, result.micro.fn) == (2, 1, 1)
    assert {t: (s.tp, s.fp, s.fn) for t, s in result.per_tag.items()} == {
        "A": (2, 0, 0),
        "B": (0, 0, 1),
        "C": (0, 1, 0),
    }
    assert result.macro_f1 == pytest.approx(1 / 3)  # every tag in gold or predictions: A=1, B=0, C=0
    assert (result.attrs.tp, result.attrs.fp, result.attrs.fn) == (1, 1, 1)  # a wrong value is fp + fn
    assert result.attr_exact == 0.5  # rows a and b have gold attributes; only a is exact
    assert result.summary() == (
        "TAG micro_p=0.667 micro_r=0.667 micro_f1=0.667 macro_f1=0.333 "
        "attr_exact=0.500 attr_p=0.500 attr_r=0.500 n=3"
    )


def test_extra_key_breaks_exact_match(tiny: Path) -> None:
    gold = load_utterances(tiny)
    predicted = {
        "a": Labels(frozenset({"A", "B"}), {"x": 8.0, "z": 1}),
        "b": Labels(frozenset({"A"}), {"y": " 杭州 "}),
    }
    result = score(gold, predicted)
    assert result.micro.f1 == 1.0 and result.macro_f1 == 1.0
    assert (result.attrs.tp, result.attrs.fp, result.attrs.fn) == (2, 1, 0)
    assert result.attr_exact == 0.5


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (8, "8", True),
        (8, 8.0, True),
        ("Manner ", "manner", True),
        ("2027-03", "2027-3", False),
        ("ｘ", "x", True),
    ],
)
def test_value_normalisation(a: object, b: object, equal: bool) -> None:
    assert (norm_value(a) == norm_value(b)) is equal


def test_predictions_file_round_trips(tmp_path: Path, tiny: Path) -> None:
    predicted = {"a": Labels(frozenset({"B", "A"}), {"x": 8}), "b": Labels()}
    out = tmp_path / "pred.tsv"
    write_predictions(out, predicted, ["a", "b", "c"])
    rows = load_utterances(out)
    assert [(r.text, r.labels.tags, dict(r.labels.attributes)) for r in rows] == [
        ("a", frozenset({"A", "B"}), {"x": 8}),
        ("b", frozenset(), {}),
        ("c", frozenset(), {}),
    ]


@needs_sample
def test_public_sample_targets() -> None:
    gold = load_utterances(SAMPLE / "utterances.tsv")
    predicted, _ = predict([r.text for r in gold], QIMU, today=dt.date(2026, 11, 22))
    result = score(gold, predicted)
    assert result.n == 150
    assert result.micro.f1 >= 0.9
    assert result.attr_exact >= 0.9


def test_held_out_xiaohe_set() -> None:
    gold = load_utterances(HELD_OUT)
    predicted, _ = predict([r.text for r in gold], XIAOHE, today=dt.date(2026, 11, 22))
    result = score(gold, predicted)
    assert result.micro.f1 >= 0.9
    assert result.attr_exact >= 0.9


def _namespace(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_tagging_eval_command(parser.add_subparsers())
    args = parser.parse_args(["eval", "--rules", str(XIAOHE), "--utterances", str(HELD_OUT)])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_cli_eval_prints_summary_and_writes_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pred.tsv"
    args = _namespace(predictions_out=str(out))
    assert args.func is cmd_tagging_eval
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert SUMMARY.fullmatch(lines[0]), lines[0]
    assert lines[0].endswith("n=42")
    assert any(line.startswith("tag 宝妈 p=") for line in lines)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 43


def test_cli_eval_today_moves_relative_dates(capsys: pytest.CaptureFixture[str]) -> None:
    args = _namespace(today=dt.date(2027, 11, 22))
    assert args.func(args) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert "attr_exact=1.000" not in summary  # the gold labels were resolved against 2026-11-22


def test_cli_eval_missing_and_invalid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_tagging_eval(_namespace(rules=str(tmp_path / "none.yaml"))) == 2
    assert "rules file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "brand: x\ngroups: {g: [a]}\nrules:\n  - id: r\n    tag: b\n    any: [x]\n", encoding="utf-8"
    )
    assert cmd_tagging_eval(_namespace(rules=str(bad))) == 2
    assert f"{bad}:5: unknown tag 'b'" in capsys.readouterr().err


def test_preview_tagging_helper() -> None:
    text = preview_tagging("宝宝8个月了 奶粉喝哪段", XIAOHE, dt.date(2026, 11, 22))
    assert text.splitlines()[0] == "tags: 宝妈, 奶粉-2段"
