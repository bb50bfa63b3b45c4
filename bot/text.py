"""Text normalisation and tokenisation for matching customer messages against the content library."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "COLLOQUIAL",
    "FUNCTION_CHARS",
    "PARTICLES",
    "STOPWORDS",
    "Normalizer",
    "Tokenizer",
    "is_function_word",
    "normalize",
    "synonym_map",
]

# 语气词: sentence-final or interjection particles that carry mood, not meaning. 吗 and 么 stay: they
# mark a question, which is evidence that the customer is asking something.
PARTICLES = frozenset("啊呀呢吧哦噢嘛啦哈嗯诶喔呐哇耶唉咯嘞呗嘿")

# Words that end (or start) with a particle character but are real words: never strip those characters.
_PROTECTED_TAIL = frozenset(
    {
        "酒吧",
        "网吧",
        "贴吧",
        "书吧",
        "水吧",
        "氧吧",
        "吧台",
        "干嘛",
        "嘻哈",
        "阿哈",
        "沙哈",
        "尼哈",
        "巴啦",
        "啦啦",
        "哈哈镜",
        "拉哈",
        "耶耶",
    }
)
_PROTECTED_HEAD = ("哈密", "哈尔滨", "哈佛", "哈士奇", "啦啦队", "哇哈哈", "呀诺达", "吧台", "嘿咻")

# Colloquial and internet spellings of common words, mapped to the standard form. These are general
# Chinese chat habits (not any brand's vocabulary), so every library benefits from them.
COLLOQUIAL: Mapping[str, str] = {
    "神马": "什么",
    "啥子": "什么",
    "啥": "什么",
    "肿么": "怎么",
    "咋": "怎么",
    "阔以": "可以",
    "可以不可以": "可以吗",
    "木有": "没有",
    "没得": "没有",
    "酱紫": "这样",
    "优惠卷": "优惠券",
    "代金卷": "代金券",
    "团购卷": "团购券",
    "兑换卷": "兑换券",
    "礼品卷": "礼品券",
    "咖啡卷": "咖啡券",
    "几多": "多少",
    "多钱": "多少钱",
}

# Function words that say nothing about which question is asked; they only dilute overlap scores.
STOPWORDS = frozenset(
    {
        "的",
        "了",
        "着",
        "过",
        "是",
        "在",
        "我",
        "你",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "咱",
        "这",
        "那",
        "这个",
        "那个",
        "就",
        "都",
        "也",
        "还",
        "又",
        "吗",
        "么",
        "呢",
        "吧",
        "啊",
        "呀",
        "和",
        "跟",
        "与",
        "或",
        "及",
        "把",
        "被",
        "给",
        "让",
        "对",
        "从",
        "到",
        "向",
        "于",
        "为",
        "请问",
        "请",
        "一下",
        "一个",
        "有点",
        "一点",
        "然后",
        "那么",
        "就是",
        "还是",
        "但是",
        "而且",
        "所以",
        "因为",
        "如果",
        "的话",
        "现在",
        "今天",
        "刚刚",
        "刚",
        "已经",
        "真的",
        "非常",
        "特别",
        "hello",
        "hi",
        "您好",
        "你好",
        "麻烦",
        "谢谢",
        "哈",
        "嗯",
        "哦",
        "噢",
        "诶",
        "喔",
        "啦",
        "嘛",
        "不",
        "没",
        "很",
        "太",
        "挺",
        "好",
        "会",
        "要",
        "想",
        "能",
        "得",
        "地",
        "个",
        "下",
        "上",
        " ",
    }
)

# Characters of interrogative and modal words (怎么办, 能不能, 可不可以, 有没有, 是不是, 多少). A word made of
# these only says what kind of answer is wanted, which the question-type cues already capture; as a word it
# would match any FAQ phrased the same way (X怎么办 ~ Y怎么办) whatever its topic. The dummy verbs 弄 / 搞 /
# 整 stand in for whatever verb the customer leaves out (怎么弄, 咋整): beside these characters they say
# nothing either.
FUNCTION_CHARS = frozenset("怎么什哪几吗呢能不可以会要没有是多少如何样办咋行否该应还得啥弄搞整")


# Single characters that are function words on their own (有 in 有什么, 能 in 能退吗); others in
# FUNCTION_CHARS often belong to a content word jieba split apart (可 of 可颂, 多 of 多肉), so they count.
_FUNCTION_SINGLES = frozenset("有能会要该行啥哪几吗呢么谁咋")


def is_function_word(word: str) -> bool:
    """True for stopwords and for words made only of interrogative / modal characters."""
    if word in STOPWORDS:
        return True
    if len(word) == 1:
        return word in _FUNCTION_SINGLES
    return all(ch in FUNCTION_CHARS for ch in word)


_WECHAT_EMOTE = re.compile(r"\[[\u4e00-\u9fffa-z]{1,4}\]")
_SPACE = re.compile(r"\s+")


def _char_class(ch: str) -> str:
    """Return 'keep', 'space' (punctuation, symbols, emoji) or 'drop' (invisible modifiers)."""
    if ch.isspace():
        return "space"
    cat = unicodedata.category(ch)
    if cat[0] in "LN":
        return "keep"
    if cat in ("Mn", "Me", "Cf", "Sk") or 0xFE00 <= ord(ch) <= 0xFE0F or 0x1F3FB <= ord(ch) <= 0x1F3FF:
        # Combining marks, variation selectors, ZWJ, skin tones: parts of an emoji or accent, not words.
        return "drop"
    return "space"


def _strip_clause(clause: str) -> str:
    """Strip particle characters from a clause: trailing runs, leading repeated runs, all-particle clauses."""
    if all(ch in PARTICLES for ch in clause):
        return ""
    end = len(clause)
    while end > 0 and clause[end - 1] in PARTICLES:
        # Stop when the particle character is the end of a real word such as 酒吧 or 干嘛.
        if any(clause[:end].endswith(word) for word in _PROTECTED_TAIL):
            break
        end -= 1
    clause = clause[:end]
    if clause.startswith(_PROTECTED_HEAD):
        return clause
    start = 0
    while start < len(clause) and clause[start] in PARTICLES:
        start += 1
    # A single leading particle may start a word (哈密瓜, 呀诺达); a run of two or more is an interjection.
    if start >= 2:
        clause = clause[start:]
    return clause


def synonym_map(synonyms: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Invert {canonical: [variants]} into {normalised variant: normalised canonical}."""
    inverted: dict[str, str] = {}
    for canonical, variants in synonyms.items():
        canon = _base_normalize(canonical)
        for variant in variants:
            key = _base_normalize(variant)
            if key and key != canon:
                inverted[key] = canon
    return inverted


def _base_normalize(text: str) -> str:
    """Normalise width, case, punctuation, emoji and particles, without any word replacement."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _WECHAT_EMOTE.sub(" ", text)
    out: list[str] = []
    for ch in text:
        kind = _char_class(ch)
        if kind == "keep":
            out.append(ch)
        elif kind == "space":
            out.append(" ")
    clauses = (_strip_clause(c) for c in _SPACE.split("".join(out)))
    return " ".join(c for c in clauses if c)


class Normalizer:
    """Compiled normaliser: base normalisation, then colloquial and synonym replacement (longest first)."""

    def __init__(self, synonyms: Mapping[str, Sequence[str]] | None = None, *, colloquial: bool = True):
        """Compile the replacement table from {canonical: [variants]} plus the colloquial table."""
        table: dict[str, str] = dict(COLLOQUIAL) if colloquial else {}
        table.update(synonym_map(synonyms or {}))
        for canonical in set(table.values()):
            # A variant may be part of its own canonical word (尿裤 in 纸尿裤): matching the canonical word
            # as a whole first (the alternation is longest first) keeps it from being replaced inside itself.
            if any(variant in canonical for variant in table):
                table.setdefault(canonical, canonical)
        self.replacements: dict[str, str] = table
        alternatives = sorted(table, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def __call__(self, text: str) -> str:
        """Return the normalised form of text."""
        base = _base_normalize(text)
        if self._pattern is None:
            return base
        return self._pattern.sub(lambda m: self.replacements[m.group(0)], base)


_DEFAULT_NORMALIZER = Normalizer()


def normalize(text: str, synonyms: Mapping[str, Sequence[str]] | None = None) -> str:
    """NFKC, lower case, strip punctuation/emoji/语气词, collapse spaces, map synonym variants."""
    if not synonyms:
        return _DEFAULT_NORMALIZER(text)
    return Normalizer(synonyms)(text)


_JIEBA_LOCK = threading.Lock()


def _quiet_jieba() -> Any:
    """Import jieba with its INFO chatter (dictionary build timings) silenced."""
    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)
    jieba.setLogLevel(logging.WARNING)
    return jieba


class Tokenizer:
    """A private jieba tokenizer that knows the library's own words; construction loads jieba's dictionary.

    Construction takes about a second (dictionary load): call it in a thread, never on the event loop.
    """

    def __init__(
        self,
        user_words: Iterable[str] = (),
        synonyms: Mapping[str, Sequence[str]] | None = None,
        *,
        normalizer: Normalizer | None = None,
    ) -> None:
        """Load a private jieba dictionary and add user words and synonym canonicals to it."""
        jieba = _quiet_jieba()
        self.normalize: Normalizer = normalizer or Normalizer(synonyms)
        self._jieba = jieba.Tokenizer()
        with _JIEBA_LOCK:
            # jieba's cache file is shared between instances; serialise the first load so two threads
            # building indexes at once do not both write it.
            self._jieba.initialize()
        words = {self.normalize(w) for w in user_words}
        words.update(self.normalize(c) for c in (synonyms or {}))
        for word in sorted(words):
            for part in word.split():
                if len(part) >= 2:
                    # A high frequency makes jieba keep the library's own terms in one piece.
                    self._jieba.add_word(part, freq=max(self._jieba.suggest_freq(part), 2000))

    def cut(self, normalized: str) -> list[str]:
        """Tokenise already-normalised text into words (spaces dropped, deterministic: no HMM)."""
        return [w for w in self._jieba.lcut(normalized, HMM=False) if w.strip()]

    def cut_for_search(self, normalized: str) -> list[str]:
        """Words plus the dictionary sub-words of long words, so 几点开门 also yields 开门 and 几点."""
        return self.segment(normalized)[1]

    def segment(self, normalized: str) -> tuple[list[str], list[str]]:
        """One jieba pass: the tokens in order (spaces kept, they end clauses) and the search words.

        The search words are what `jieba.cut_for_search` yields (words plus their dictionary 2- and
        3-character sub-words), derived from the same cut so callers needing both pay for one segmentation.
        """
        tokens = self._jieba.lcut(normalized, HMM=False)
        freq = self._jieba.FREQ
        search: list[str] = []
        for w in tokens:
            if not w.strip():
                continue
            n = len(w)
            if n > 2:
                search.extend(w[i : i + 2] for i in range(n - 1) if freq.get(w[i : i + 2]))
            if n > 3:
                search.extend(w[i : i + 3] for i in range(n - 2) if freq.get(w[i : i + 3]))
            search.append(w)
        return tokens, search

    def tokenize(self, text: str) -> list[str]:
        """Normalise then tokenise raw text."""
        return self.cut(self.normalize(text))
