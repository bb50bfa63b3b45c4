"""FAQ matcher benchmark: a generated 10,000-entry library; index build time, RSS, per-query p50/p99 on one
core, side by side with a naive rapidfuzz extractOne over every question.

    .venv/bin/python bench/bench_faq.py [--entries 10000] [--queries 3000] [--cpu 0] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rapidfuzz import fuzz, process

from handlers.faq_match import FaqDoc, build_index

PRODUCTS = [
    "拿铁",
    "美式",
    "卡布奇诺",
    "摩卡",
    "澳白",
    "冷萃",
    "生椰拿铁",
    "燕麦拿铁",
    "焦糖玛奇朵",
    "抹茶拿铁",
    "可颂",
    "贝果",
    "吐司",
    "欧包",
    "肉桂卷",
    "司康",
    "芝士蛋糕",
    "提拉米苏",
    "巴斯克",
    "瑞士卷",
    "奶粉",
    "纸尿裤",
    "湿巾",
    "奶瓶",
    "辅食",
    "米粉",
    "婴儿车",
    "安全座椅",
    "吸奶器",
    "孕妇装",
    "面霜",
    "精华",
    "防晒",
    "洗面奶",
    "口红",
    "粉底",
    "眼霜",
    "面膜",
    "卸妆水",
    "香水",
    "跑鞋",
    "羽绒服",
    "卫衣",
    "牛仔裤",
    "双肩包",
    "帆布鞋",
    "风衣",
    "围巾",
    "手套",
    "帽子",
]
ATTRS = [
    "一段",
    "二段",
    "三段",
    "大杯",
    "中杯",
    "小杯",
    "冰的",
    "热的",
    "限定款",
    "新款",
    "经典款",
    "礼盒装",
    "旅行装",
    "家庭装",
    "会员专享",
    "儿童款",
    "加厚款",
    "无糖款",
    "低脂款",
    "有机款",
]
TEMPLATES = [
    "{p}{a}多少钱",
    "{p}{a}有没有货",
    "{p}{a}怎么退换",
    "{p}{a}保质期多久",
    "{p}{a}能不能寄到外地",
    "{p}{a}和普通款有什么区别",
    "{p}{a}适合几岁用",
    "{p}{a}哪里能买到",
    "{p}{a}可以开发票吗",
    "{p}{a}有什么优惠活动",
    "{p}{a}怎么保存",
    "{p}{a}发货要几天",
    "{p}{a}质量有问题怎么办",
    "{p}{a}会员价是多少",
    "{p}{a}能用优惠券吗",
    "{p}{a}什么时候补货",
    "{p}{a}是正品吗",
    "{p}{a}支持七天无理由吗",
    "{p}{a}配料表在哪看",
    "{p}{a}怎么使用",
]
TYPOS = {"怎么": "咋", "什么": "啥", "多少钱": "多钱", "优惠券": "优惠卷", "可以": "阔以"}
FILLERS = ["请问", "你好 ", "hello ", "", "", "想问下 ", "亲 "]
ENDINGS = ["", "", "啊", "呀", "呢", "?", "～", "😂", " 急"]


def generate(n: int, rng: random.Random) -> list[FaqDoc]:
    """n distinct entries, each with 2-3 questions (templates x products x attributes) and keywords."""
    combos = [(t, p, a) for t in range(len(TEMPLATES)) for p in PRODUCTS for a in ATTRS]
    rng.shuffle(combos)
    docs = []
    for i, (t, p, a) in enumerate(combos[:n]):
        alt = (t + 1 + rng.randrange(len(TEMPLATES) - 1)) % len(TEMPLATES)
        questions = (TEMPLATES[t].format(p=p, a=a), TEMPLATES[alt].format(p=p, a=a), f"{a}{p}的问题")
        doc = FaqDoc(id=f"faq_{i:05d}", questions=questions, keywords=(p + a, p), answer=f"{p}{a}的说明")
        docs.append(doc)
    return docs


def make_queries(docs: Sequence[FaqDoc], n: int, rng: random.Random) -> list[str]:
    """Customer-like variants of library questions: fillers, typos, particles, swapped order, off-topic."""
    queries = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.1:
            queries.append(rng.choice(["谢谢", "好的", "在吗", "今天天气不错", "哈哈哈哈", "快递到哪了"]))
            continue
        q = rng.choice(rng.choice(docs).questions)
        for src, dst in TYPOS.items():
            if src in q and rng.random() < 0.3:
                q = q.replace(src, dst)
        if roll > 0.8:
            q = q[len(q) // 2 :] + " " + q[: len(q) // 2]
        queries.append(rng.choice(FILLERS) + q + rng.choice(ENDINGS))
    return queries


def rss_kib() -> int:
    """Resident set size of this process in KiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(fn: Callable[[str], object], queries: Sequence[str]) -> list[float]:
    """Per-call latency in ms."""
    out = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=3_000)
    ap.add_argument("--naive-queries", type=int, default=500, help="queries for the slow extractOne baseline")
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    rng = random.Random(args.seed)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    docs = generate(args.entries, rng)
    queries = make_queries(docs, args.queries, rng)

    # Warm jieba's dictionary first so the build figure is the index, not the one-off dictionary load.
    from bot.text import Tokenizer

    start = time.perf_counter()
    tokenizer = Tokenizer([kw for d in docs for kw in d.keywords])
    load_s = time.perf_counter() - start
    rss0 = rss_kib()
    start = time.perf_counter()
    index = build_index(docs, tokenizer=tokenizer)
    build_s = time.perf_counter() - start
    rss1 = rss_kib()

    lat = timed(lambda q: index.match(q, limit=5), queries[:200])  # warm-up
    lat = timed(lambda q: index.match(q, limit=5), queries)
    all_questions = [q for d in docs for q in d.questions]
    naive_q = queries[: args.naive_queries]
    naive = timed(lambda q: process.extractOne(q, all_questions, scorer=fuzz.WRatio), naive_q)

    print(f"library: {len(docs)} entries, {len(all_questions)} questions; pinned to cpu {args.cpu}")
    print(f"jieba dictionary + user words: {load_s:.2f} s")
    delta = (rss1 - rss0) / 1024
    print(f"index build: {build_s:.2f} s, RSS delta {delta:.1f} MiB (process RSS {rss1 / 1024:.0f} MiB)")
    print(f"{'':24}{'queries':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(f"{'siyu FaqIndex.match':24}{len(lat):8d}{pct(lat, 50):9.3f}{pct(lat, 99):9.3f}{max(lat):9.3f}")
    row = f"{len(naive):8d}{pct(naive, 50):9.3f}{pct(naive, 99):9.3f}{max(naive):9.3f}"
    print(f"{'rapidfuzz extractOne':24}{row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
