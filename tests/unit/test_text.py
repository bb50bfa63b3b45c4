"""Normalisation and tokenisation tables."""

from __future__ import annotations

import pytest

from bot.lexicon import default_matcher, is_acknowledgement, mentions_elsewhere
from bot.text import Normalizer, Tokenizer, is_function_word, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full width to half width, lower case
        ("WiFi密码多少？！", "wifi密码多少"),
        ("谢谢啦😊", "谢谢"),
        ("阔以带狗狗进店吗🐶", "可以带狗狗进店吗"),
        ("嗯呢", ""),
        ("哈哈哈哈哈哈", ""),
        ("过生日可以白嫖一杯吗哈哈哈", "过生日可以白嫖一杯吗"),
        ("哈密瓜有吗", "哈密瓜有吗"),  # 哈 starting a word is not a particle
        ("去酒吧", "去酒吧"),  # 吧 ending a word is not a particle
        ("啊啊啊点错了", "点错了"),
        ("早上神马时候开门啊", "早上什么时候开门"),
        ("我的优惠卷呢", "我的优惠券"),
        ("[表情]", ""),
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
    return Tokenizer(["栖木咖啡", "成长值"], {"纸尿裤": ["尿不湿"]})


def test_tokenizer_keeps_library_words_whole(tokenizer: Tokenizer) -> None:
    assert "栖木咖啡" in tokenizer.tokenize("栖木咖啡的成长值怎么算")
    assert "成长值" in tokenizer.tokenize("栖木咖啡的成长值怎么算")
    assert "纸尿裤" in tokenizer.tokenize("尿不湿多少钱")


def test_tokenizer_is_private_instance(tokenizer: Tokenizer) -> None:
    import jieba

    assert tokenizer._jieba is not jieba.dt


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("点外卖要另外付跑腿费吗", "配送费"),
        ("刚下的单能撤回吗", "取消"),
        ("这单能作废不", "取消"),
        ("叫个活人来回复我", "人工"),
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


@pytest.mark.parametrize("text", ["几点开门 能不能退款", "中华人民共和国的奶粉", "栖木咖啡的成长值怎么算"])
def test_segment_matches_jieba_cut_for_search(tokenizer: Tokenizer, text: str) -> None:
    tokens, search = tokenizer.segment(text)
    assert "".join(tokens) == text
    assert search == [w for w in tokenizer._jieba.lcut_for_search(text, HMM=False) if w.strip()]
