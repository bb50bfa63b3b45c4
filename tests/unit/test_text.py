"""Normalisation and tokenisation tables."""

from __future__ import annotations

import pytest

from bot.lexicon import default_matcher, is_acknowledgement, mentions_elsewhere
from bot.text import Normalizer, Tokenizer, is_function_word, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full width to half width, lower case
        ("店里WiFi连不上？！", "店里wifi连不上"),
        ("收到啦😊", "收到"),
        ("阔以推婴儿车进店吗👶", "可以推婴儿车进店吗"),
        ("嗯呢", ""),
        ("嘿嘿 哈哈哈哈", ""),  # clauses of particles only
        ("满月礼能白嫖一份吗哈哈哈", "满月礼能白嫖一份吗"),
        ("哈密瓜有吗", "哈密瓜有吗"),  # 哈 starting a word is not a particle
        ("去酒吧", "去酒吧"),  # 吧 ending a word is not a particle
        ("啊啊啊点错了", "点错了"),
        ("奶粉神马时候到货啊", "奶粉什么时候到货"),
        ("我的优惠卷呢", "我的优惠券"),
        ("[微笑]好的", "好的"),
        ("  多个   空格  ", "多个 空格"),
        ("这个咋弄呀", "这个怎么弄"),
    ],
)
def test_normalize_table(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_synonym_variants_map_to_canonical() -> None:
    synonyms = {"纸尿裤": ["尿不湿", "尿片"], "配送费": ["跑腿费", "运费"]}
    assert normalize("尿不湿有大号吗", synonyms) == "纸尿裤有大号吗"
    assert Normalizer(synonyms)("点外卖要付跑腿费吗") == "点外卖要付配送费吗"


def test_variant_inside_its_canonical_word_is_not_replaced() -> None:
    synonyms = {"纸尿裤": ["尿裤", "尿不湿"]}
    assert normalize("纸尿裤和拉拉裤", synonyms) == "纸尿裤和拉拉裤"
    assert normalize("尿裤 尿不湿", synonyms) == "纸尿裤 纸尿裤"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("怎么办", True),
        ("怎么弄", True),  # dummy verbs (弄, 搞, 整) stand in for a verb left out
        ("怎么整", True),
        ("能不能", True),
        ("可不可以", True),
        ("有没有", True),
        ("有", True),
        ("的", True),
        ("多少钱", False),  # 钱 is content: a question about price
        ("会员", False),
        ("可", False),  # may be the remnant of a word jieba split (可颂)
        ("退货", False),
    ],
)
def test_function_words(word: str, expected: bool) -> None:
    assert is_function_word(word) is expected


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer(["小禾母婴", "成长值"], {"纸尿裤": ["尿不湿"]})


def test_tokenizer_keeps_library_words_whole(tokenizer: Tokenizer) -> None:
    assert "小禾母婴" in tokenizer.tokenize("小禾母婴的成长值怎么算")
    assert "成长值" in tokenizer.tokenize("小禾母婴的成长值怎么算")
    assert "纸尿裤" in tokenizer.tokenize("尿不湿多少钱")


def test_tokenizer_is_private_instance(tokenizer: Tokenizer) -> None:
    import jieba

    assert tokenizer._jieba is not jieba.dt


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("同城送奶粉要付跑腿费吗", "配送费"),
        ("纸尿裤拍多了 订单能撤回吗", "取消"),
        ("奶粉那单能作废不", "取消"),
        ("有没有活人 我问下辅食", "人工"),
        ("有没有金卡黑卡", "会员等级"),
        ("能开专票吗", "发票"),
        ("applepay能用不", "支付方式"),
    ],
)
def test_lexicon_finds_general_concepts(text: str, concept: str) -> None:
    assert concept in default_matcher()(normalize(text))


def test_lexicon_question_types_and_cues() -> None:
    found = default_matcher()(normalize("外卖多久能到"))
    assert {"?问时长", "送达时间"} <= found
    assert is_acknowledgement(normalize("谢谢啦 宝宝喝得很好"))
    assert not is_acknowledgement(normalize("谢谢 请问积分怎么用"))
    assert mentions_elsewhere(normalize("京东买的奶瓶怎么退货"))
    assert not mentions_elsewhere(normalize("奶瓶怎么退货"))


@pytest.mark.parametrize("text", ["几点开门 能不能退款", "中华人民共和国的奶粉", "小禾母婴的成长值怎么算"])
def test_segment_matches_jieba_cut_for_search(tokenizer: Tokenizer, text: str) -> None:
    tokens, search = tokenizer.segment(text)
    assert "".join(tokens) == text
    assert search == [w for w in tokenizer._jieba.lcut_for_search(text, HMM=False) if w.strip()]
