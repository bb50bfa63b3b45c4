"""Matcher tables on a small maternal & baby library (not the eval sample) and band rules."""

from __future__ import annotations

import pytest

from handlers.faq_match import FaqDoc, FaqIndex, band, build_index, decide

ANSWER, SUGGEST = 0.72, 0.45

DOCS = [
    FaqDoc(
        "formula_prep",
        ("奶粉怎么冲泡", "冲奶粉水温多少度"),
        ("冲泡", "水温", "冲奶粉"),
        "用70度温水冲泡，先放水后放粉。",
    ),
    FaqDoc(
        "formula_stage",
        ("奶粉几段适合几个月宝宝", "宝宝多大喝二段奶粉"),
        ("一段", "二段", "三段", "几段"),
        "一段0-6个月，二段6-12个月，三段1-3岁。",
    ),
    FaqDoc(
        "diaper_size",
        ("纸尿裤怎么选尺码", "纸尿裤尺码对照表"),
        ("尺码", "纸尿裤", "大号"),
        "按体重选：S码4-8kg。",
    ),
    FaqDoc(
        "shipping_time",
        ("下单后多久发货", "快递几天能到"),
        ("发货", "快递", "物流"),
        "48小时内发货，快递2-4天。",
    ),
    FaqDoc(
        "return_policy",
        ("可以退货吗", "七天无理由退换吗"),
        ("退货", "退换", "无理由"),
        "未拆封商品支持7天无理由退货。",
    ),
    FaqDoc(
        "member_points", ("积分怎么用", "积分能换什么"), ("积分", "积分兑换"), "积分可以在会员中心兑换礼品。"
    ),
    FaqDoc(
        "quality_issue",
        ("商品有质量问题怎么办", "收到的东西坏了怎么办"),
        ("质量问题", "坏了"),
        "拍照联系客服，核实后换新或退款。",
    ),
]
SYNONYMS = {"纸尿裤": ["尿不湿", "尿片"]}


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return build_index(DOCS, synonyms=SYNONYMS, brand_words=("贝乐宝",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("奶粉怎么冲泡", "formula_prep"),  # exact
        ("请问冲奶粉的水温要多少度呀", "formula_prep"),  # paraphrase with particles
        ("奶粉咋冲泡啊😂", "formula_prep"),  # colloquial spelling and emoji
        ("尿不湿尺码怎么选", "diaper_size"),  # synonym and word order
        ("纸尿裤尺码怎么选", "diaper_size"),  # word order
        ("快递几天能到呢", "shipping_time"),
        ("七天无理由退换吗？", "return_policy"),
    ],
)
def test_clear_questions_are_answered(index: FaqIndex, text: str, expected: str) -> None:
    decision = decide(index, text, answer=ANSWER, suggest=SUGGEST)
    assert decision.best is not None and decision.best.id == expected
    assert decision.band == "answer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("宝宝八个月了该喝几段", "formula_stage"),
        ("奶粉冲泡水温", "formula_prep"),  # typo-free but terse
        ("我想退货", "return_policy"),
        ("买的东西什么时候发货", "shipping_time"),
        # The same question words (怎么办, 能不能, 几天) must not outweigh the topic they ask about.
        ("纸尿裤尺码选错了怎么办", "diaper_size"),
        ("积分不会用怎么办", "member_points"),
        ("能不能七天无理由", "return_policy"),
        ("奶粉开了几天要喝完 冲泡的水温呢", "formula_prep"),
        # A synonym inside its canonical word is not replaced twice (纸尿裤 stays 纸尿裤).
        ("纸尿裤大号怎么选", "diaper_size"),
    ],
)
def test_paraphrases_rank_first(index: FaqIndex, text: str, expected: str) -> None:
    candidates = index.match(text)
    assert candidates and candidates[0].id == expected
    assert 0.0 <= candidates[0].score <= 1.0


@pytest.mark.parametrize("text", ["谢谢", "在吗", "好的", "哈哈哈", "👍👍", "今天天气真好", "你是谁"])
def test_chit_chat_is_silent(index: FaqIndex, text: str) -> None:
    assert decide(index, text, answer=ANSWER, suggest=SUGGEST).band == "silent"


@pytest.mark.parametrize(
    "text",
    [
        "隔壁超市的积分能在你们这用吗",  # shares 积分 but asks something not covered
        "京东买的奶瓶怎么退货",  # shares 退货, about another shop
        "我家宝宝晚上老是哭怎么办",
        "忘记密码了怎么办",  # shares only the phrasing with an entry
        "能不能便宜点",
        "多少钱",  # question words only: no topic to answer about (a menu at most)
        "怎么办",
    ],
)
def test_near_misses_never_answer(index: FaqIndex, text: str) -> None:
    assert decide(index, text, answer=ANSWER, suggest=SUGGEST).band != "answer"


def test_reasons_name_matched_words(index: FaqIndex) -> None:
    best = index.match("纸尿裤尺码怎么选")[0]
    assert "尺码" in best.reasons
    assert best.question in DOCS[2].questions


def test_long_message_is_cut(index: FaqIndex) -> None:
    text = "奶粉怎么冲泡" + "啦" * 10_000 + "纸尿裤尺码"
    assert index.match(text, max_chars=20)[0].id == "formula_prep"


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.9, "answer"), (0.72, "answer"), (0.71, "suggest"), (0.45, "suggest"), (0.1, "silent")],
)
def test_band(score: float, expected: str) -> None:
    assert band(score, ANSWER, SUGGEST) == expected


def test_close_strong_candidates_make_a_menu() -> None:
    docs = [FaqDoc("a", ("会员积分怎么查",), ("积分",)), FaqDoc("b", ("会员积分怎么查询",), ("积分",))]
    idx = build_index(docs, tokenizer=None)
    decision = decide(idx, "会员积分怎么查", answer=0.5, suggest=0.2, menu_size=2)
    assert decision.band == "suggest"
    assert {c.id for c in decision.candidates} == {"a", "b"}


def test_empty_message_is_silent(index: FaqIndex) -> None:
    decision = decide(index, "。。。", answer=ANSWER, suggest=SUGGEST)
    assert decision.band == "silent" and decision.best is None and decision.candidates == ()
