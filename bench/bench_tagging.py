"""Per-message tagging cost with 500 rules: p50 / p99 of `extract` over the public sample's messages.

    taskset -c 0 .venv/bin/python bench/bench_tagging.py [--rules 500] [--rounds 20]

The rule set is the 栖木 sample's rules plus generated ones up to `--rules`: every generated rule has
eight keywords (some drawn from words customers really use, so rules fire), and one in four also has
a regex pattern (one in forty of all rules has no literal at all, so it runs on every message). Target:
p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.tagging import load_rules_text  # noqa: E402
from bot.tagging_eval import SAMPLE_DATE, load_utterances  # noqa: E402
from handlers.tag_extract import compile_rules, extract  # noqa: E402

SAMPLE_RULES = ROOT / "tests/fixtures/tagging/qimu_rules.yaml"
UTTERANCES = ROOT.parent / "shared/eval/tagging/utterances.tsv"
REAL_WORDS = [
    "拿铁",
    "美式",
    "蛋糕",
    "宝宝",
    "上班",
    "公司",
    "外卖",
    "会员",
    "生日",
    "面包",
    "学生",
    "预约",
    "低因",
    "燕麦",
    "退款",
    "投诉",
    "门店",
    "团购",
    "杭州",
    "周末",
]


def _word(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(REAL_WORDS) + rng.choice(["", "了", "的"])
    return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 4)))


def build_rules_yaml(count: int, seed: int = 7) -> str:
    """The sample rules plus generated rules (and a tag per generated rule) up to `count` rules."""
    rng = random.Random(seed)
    doc = yaml.safe_load(SAMPLE_RULES.read_text(encoding="utf-8"))
    extra = count - len(doc["rules"])
    doc["groups"]["生成"] = [f"标签{i}" for i in range(extra)]
    for i in range(extra):
        rule: dict[str, object] = {
            "id": f"gen_{i}",
            "tag": f"标签{i}",
            "any": [_word(rng) for _ in range(8)],
            "points": rng.randint(0, 5),
        }
        if i % 4 == 0:
            literal = _word(rng)
            rule["patterns"] = [
                f"{literal}.{{0,4}}{{number}}个" if i % 8 == 0 else f"(?:{literal}|{_word(rng)})\\d+"
            ]
        if i % 40 == 2:
            # No literal at all: this regex runs on every message.
            rule["patterns"] = [rf"\d{{{rng.randint(2, 4)},}}[a-z]{{2,}}"]
        if i % 10 == 0:
            rule["none"] = [_word(rng)]
        doc["rules"].append(rule)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def main() -> None:
    """Build the rules, warm up, time every message `--rounds` times, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    started = time.perf_counter()
    rules = load_rules_text(build_rules_yaml(args.rules), "bench_rules.yaml")
    compiled = compile_rules(rules)
    build_ms = (time.perf_counter() - started) * 1000
    texts = [row.text for row in load_utterances(UTTERANCES)]
    for text in texts:  # warm-up: regex caches, jieba-free normaliser tables
        extract(text, compiled, today=SAMPLE_DATE)

    timings: list[float] = []
    for _ in range(args.rounds):
        for text in texts:
            t0 = time.perf_counter()
            extract(text, compiled, today=SAMPLE_DATE)
            timings.append(time.perf_counter() - t0)
    timings.sort()
    p50 = timings[len(timings) // 2] * 1000
    p99 = timings[int(len(timings) * 0.99)] * 1000
    print(
        f"tagging rules={len(rules.rules)} attributes={len(rules.attributes)} messages={len(timings)} "
        f"build={build_ms:.0f}ms p50={p50:.3f}ms p99={p99:.3f}ms max={timings[-1] * 1000:.3f}ms "
        f"mean={statistics.fmean(timings) * 1000:.3f}ms"
    )
    print("target p99<=1ms: " + ("ok" if p99 <= 1.0 else "MISSED"))


if __name__ == "__main__":
    main()
