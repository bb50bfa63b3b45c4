"""FAQ matcher (pure, no I/O): an IDF-weighted inverted index over words and character bigrams, then
rapidfuzz and keyword evidence on a bounded candidate set, and the answer / suggest / silent bands."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz import fuzz

from bot.lexicon import QUESTION_TYPES, default_matcher, is_acknowledgement, mentions_elsewhere
from bot.text import STOPWORDS, Normalizer, Tokenizer, is_function_word

__all__ = [
    "Band",
    "Candidate",
    "Decision",
    "FaqDoc",
    "FaqIndex",
    "band",
    "build_index",
    "decide",
]

Band = Literal["answer", "suggest", "silent"]

# How many candidates the inverted index hands to the (slower) fuzzy scorer: bounds per-message work.
RETRIEVE_K = 8
# Candidates whose retrieval overlap is below this share of the leader's skip the fuzzy scorer.
FUZZY_FLOOR = 0.3
# Answer text is evidence too (it names the things the entry covers) but weaker than what ops wrote as
# questions and keywords.
ANSWER_WEIGHT = 0.5
# Bigrams overlap by accident more often than whole words do.
BIGRAM_WEIGHT = 0.6
# Interrogative and modal words (怎么办, 能不能) say how a question is phrased, not what it is about: they
# only break ties between entries that share its content.
FUNCTION_WEIGHT = 0.25
# A single character standing alone is mostly the remnant of a word jieba did not know (拿 铁): as ambiguous
# as a bigram.
SINGLE_WEIGHT = 0.6
# A shared concept (跑腿费 ~ 配送费) is good evidence but looser than the same word; a shared question type
# (多少钱, 多久) only says the message asks the same kind of thing.
CONCEPT_WEIGHT = 1.0
QTYPE_WEIGHT = 0.5
# ... and a concept the message names with the very word the library uses adds little to that word.
ECHO_FACTOR = 0.25
# A feature in more than this share of a large library says nothing about which entry is meant; skip
# it during retrieval so a posting list never spans the whole library.
MAX_DF_SHARE = 0.05
MIN_POSTINGS_LIMIT = 64
# Only features in at most this share of a large library propose candidates; commoner ones add to them.
GEN_SHARE = 0.01
# Two candidates whose scores are this close are a coin toss: offer both rather than pick one.
MARGIN = 0.06
# Thanks and acknowledgements that ask nothing may still name a topic; keep them out of the answer band.
ACK_FACTOR = 0.5
# A question about another shop or marketplace is at most worth offering to a person.
ELSEWHERE_FACTOR = 0.75
# A message made only of question words (你是谁, 多少钱, 怎么办) names no topic: whatever it matches, it
# matches by phrasing, so it may not reach the answer band on that alone.
NO_TOPIC_FACTOR = 0.5
# Weights of the evidence and the factor that maps the raw blend onto the 0..1 scale of the bands.
W_QUERY, W_QUESTION, W_KEYWORD = 0.60, 0.20, 0.20
SCALE = 1.35


@dataclass(frozen=True, slots=True)
class FaqDoc:
    """One FAQ entry as the matcher sees it."""

    id: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    answer: str = ""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ranked match: score in 0..1, the best-matching question, and the words that matched."""

    id: str
    score: float
    question: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a message: the band, the top candidates (a menu) and the best one."""

    band: Band
    candidates: tuple[Candidate, ...]
    best: Candidate | None


@dataclass(slots=True)
class _Entry:
    """Pre-computed features of one FAQ entry."""

    doc: FaqDoc
    questions_norm: tuple[str, ...]
    # Per question: feature -> IDF x kind weight, pre-computed so scoring is a dictionary intersection.
    question_feats: tuple[dict[str, float], ...]
    question_mass: tuple[float, ...]
    keywords_norm: tuple[str, ...]
    primary: frozenset[str]
    answer: frozenset[str]


@dataclass(slots=True)
class _Query:
    """Features of one message."""

    norm: str
    words: list[str]
    weights: dict[str, float] = field(default_factory=dict)
    mass: float = 0.0


def _kind_weight(feature: str) -> float:
    """How much a feature of this kind counts relative to a whole word with the same IDF."""
    kind = feature[0]
    if kind == "w":
        return SINGLE_WEIGHT if len(feature) == 2 else 1.0
    if kind == "b":
        return BIGRAM_WEIGHT
    if kind == "f":
        return FUNCTION_WEIGHT
    return QTYPE_WEIGHT if feature[1] == "?" else CONCEPT_WEIGHT


def _is_topic(feature: str) -> bool:
    """True for evidence about what a message is about: words, bigrams, concepts (not question types)."""
    kind = feature[0]
    return kind in "wb" or (kind == "c" and feature[1] != "?")


def _concepts(norm: str) -> set[str]:
    """Concept features ('c' + concept name) of normalised text from the built-in lexicon."""
    return {"c" + c for c in default_matcher()(norm)}


# Single characters that end a run of content for bigrams: particles and aspect markers. Prepositions and
# verbs such as 到 stay, since jieba often splits them off a word (送到家 -> 送 到 家).
_RUN_BREAKS = frozenset("的了着过吗呢么吧啊呀哦嘛啦")


# Words that only name the kind of answer wanted (几天, 多少钱, 什么时候): the question-type features carry
# that; as words they would tie a message to any entry phrased alike (发货要几天 ~ 奶粉开封能放几天).
_QTYPE_WORDS = frozenset(s for surfaces in QUESTION_TYPES.values() for s in surfaces)


def _breaks_run(token: str) -> bool:
    """True for particles, aspect markers and function words of two or more characters."""
    return token in _RUN_BREAKS or (len(token) > 1 and is_function_word(token))


def _is_function_single(token: str) -> bool:
    """True for a particle or a single-character function word (能, 有, 要)."""
    return token in _RUN_BREAKS or (len(token) == 1 and is_function_word(token))


def _is_modal(word: str) -> bool:
    """True for interrogative / modal words and question-type surfaces."""
    return word in _QTYPE_WORDS or is_function_word(word)


def _subwords(tokens: Sequence[str], search: Sequence[str]) -> dict[str, str]:
    """Search words that are only parts of a longer token (第一 of 第一次), mapped to that token."""
    whole = set(tokens)
    parts: dict[str, str] = {}
    for t in tokens:
        if len(t) > 2:
            for w in search:
                if w != t and w not in whole and w in t:
                    parts.setdefault(w, t)
    return parts


def _segment(tok: Tokenizer, norm: str) -> tuple[list[str], list[str], set[str]]:
    """Content words, interrogative / modal words, and the character bigrams of content runs.

    Bigrams are taken inside runs of content tokens only: a bigram that straddles a particle or a question
    word (了怎, 么办) matches every FAQ phrased the same way, whatever it is about.
    """
    tokens, search = tok.segment(norm)
    return _split(tokens, search)


def _split(tokens: Sequence[str], search: Sequence[str]) -> tuple[list[str], list[str], set[str]]:
    """`_segment` on an existing jieba pass."""
    words = [w for w in search if not _is_modal(w)]
    modal = [w for w in search if w not in STOPWORDS and _is_modal(w)]
    grams: set[str] = set()
    run: list[str] = []
    for t in [*tokens, " "]:
        if t.strip() and not _breaks_run(t):
            run.append(t)
            continue
        if run:
            joined = "".join(run)
            grams.update(joined[i : i + 2] for i in range(len(joined) - 1))
            run = []
    # A bigram that is a word of the text repeats that word's evidence; bigrams are for words segmented apart.
    return words, modal, grams - set(search)


class FaqIndex:
    """An immutable, pre-tokenised index of FAQ entries; `match` is cheap and bounded."""

    def __init__(
        self,
        entries: list[_Entry],
        tokenizer: Tokenizer,
        df: dict[str, float],
        postings: dict[str, list[int]],
    ) -> None:
        """Use `build_index`; this only stores pre-computed parts."""
        self._entries = entries
        self._tok = tokenizer
        n = max(len(entries), 1)
        self._n = n
        self._idf = {f: math.log(1.0 + n / d) for f, d in df.items()}
        # A feature no entry has gets the weight of the rarest possible one: unknown content in a message
        # is a sign the customer is asking about something the library does not cover.
        self._idf_unknown = math.log(1.0 + n / 0.5)
        limit = max(MAX_DF_SHARE * n, MIN_POSTINGS_LIMIT)
        self._postings = {f: ids for f, ids in postings.items() if len(ids) <= limit}
        # Features common enough that walking their postings costs more than checking the candidates
        # the rarer features found: kept as sets so they only add to existing candidates.
        self._gen_limit = max(GEN_SHARE * n, MIN_POSTINGS_LIMIT)
        self._posting_sets = {
            f: frozenset(ids) for f, ids in self._postings.items() if len(ids) > self._gen_limit
        }

    def __len__(self) -> int:
        """Number of entries."""
        return len(self._entries)

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer (and through it the normaliser) the index was built with."""
        return self._tok

    def _features(self, text: str) -> _Query:
        """Normalise, tokenise and weight the features of a message."""
        norm = self._tok.normalize(text)
        tokens, search = self._tok.segment(norm)
        words, modal, grams = _split(tokens, search)
        idf, unknown = self._idf, self._idf_unknown
        # A sub-word of a word the index knows (第一 / 一次 of 第一次) repeats that word's evidence; sub-words
        # only stand in for a long word the library does not use.
        parts = _subwords(tokens, search)
        words = [w for w in words if not (w in parts and "w" + parts[w] in idf)]
        # Two single characters side by side are mostly a word jieba did not know (拿 铁): when the index
        # knows their bigram, the bigram carries them; the characters too would count one word three times.
        joined = {
            a: b
            for a, b in itertools.pairwise(tokens)
            if len(a) == 1
            and len(b) == 1
            and "b" + a + b in idf
            and not _is_function_single(a)
            and not _is_function_single(b)
        }
        if joined:
            covered = set(joined) | set(joined.values())
            words = [w for w in words if w not in covered]
        query = _Query(norm=norm, words=words)
        concepts, surfaces = default_matcher().find(norm)
        # Surfaces whose concept some entry has: only those can stand in for the words they contain.
        known = [s for s, names in surfaces.items() if any("c" + c in idf for c in names)]
        for w in words:
            key = "w" + w
            if key not in idf and any(w in s for s in known):
                # An unknown word the lexicon recognises (跑腿费 -> 配送费) is carried by its concept feature;
                # counting it as unknown content too would read a paraphrase as an uncovered question.
                continue
            # Unknown single characters are mostly noise (particles, measure words), unknown words are not.
            if key in idf:
                query.weights[key] = idf[key] * _kind_weight(key)
            else:
                query.weights[key] = unknown if len(w) > 1 else 0.5
        for w in modal:
            key = "f" + w
            if key in idf:
                query.weights[key] = idf[key] * FUNCTION_WEIGHT
        for g in grams:
            key = "b" + g
            if key in idf:
                query.weights[key] = idf[key] * BIGRAM_WEIGHT
        echoes: dict[str, bool] = {}
        for surface, names in surfaces.items():
            # A concept found only through words the index already knows repeats their evidence.
            echo = "w" + surface in idf and "w" + surface in query.weights
            for c in names:
                echoes[c] = echoes.get(c, True) and echo
        for c in concepts:
            key = "c" + c
            # A concept no entry has is not evidence either way: the lexicon is broader than any library.
            if key in idf:
                factor = ECHO_FACTOR if echoes.get(c) else 1.0
                query.weights[key] = idf[key] * _kind_weight(key) * factor
        query.mass = sum(query.weights.values()) or 1.0
        return query

    def _retrieve(self, query: _Query, k: int) -> list[tuple[int, float]]:
        """Top-k entry positions by IDF-weighted feature overlap (answer features count less)."""
        acc: dict[int, float] = {}
        get = acc.get
        deferred: list[tuple[str, float]] = []
        gen_limit = self._gen_limit
        for key, weight in query.weights.items():
            ids = self._postings.get(key)
            if ids is None:
                continue
            if len(ids) > gen_limit:
                deferred.append((key, weight))
                continue
            for i in ids:
                acc[i] = get(i, 0.0) + weight
        for key, weight in deferred:
            if not acc:
                # Nothing rarer matched: the common feature has to propose candidates itself.
                for i in self._postings[key]:
                    acc[i] = get(i, 0.0) + weight
                continue
            members = self._posting_sets[key]
            for i in acc:
                if i in members:
                    acc[i] += weight
        if len(acc) <= k:
            return sorted(acc.items(), key=lambda item: item[1], reverse=True)
        return heapq.nlargest(k, acc.items(), key=lambda item: item[1])

    def _score(self, query: _Query, entry: _Entry, *, fuzzy: bool = True) -> Candidate:
        """Combine coverage, keyword evidence and fuzzy similarity into one calibrated 0..1 score."""
        weights = query.weights
        matched = 0.0
        matched_answer = 0.0
        reasons: list[str] = []
        for key, weight in weights.items():
            if key in entry.primary:
                matched += weight
                if key[0] == "w":
                    reasons.append(key[1:])
            elif key in entry.answer:
                matched_answer += weight
        # Share of the message's content that this entry explains.
        query_cov = min(1.0, (matched + ANSWER_WEIGHT * matched_answer) / query.mass)

        # Share of the best question's content that the message contains, blended with fuzzy similarity.
        norm = query.norm
        best_q, best_q_score = 0, -1.0
        for j, feats in enumerate(entry.question_feats):
            mass = entry.question_mass[j]
            covered = sum(feats[f] for f in weights.keys() & feats.keys())
            cov = covered / mass if mass else 0.0
            sim = fuzz.partial_ratio(entry.questions_norm[j], norm, score_cutoff=50) / 100.0 if fuzzy else 0.0
            q_score = 0.65 * cov + 0.35 * sim
            if q_score > best_q_score:
                best_q, best_q_score = j, q_score

        # Keywords are what ops said the entry is about: an exact hit is strong evidence.
        kw_hits = [kw for kw in entry.keywords_norm if kw and kw in norm]
        kw_score = 0.0
        if kw_hits:
            kw_score = 1.0 - 0.45 ** len(kw_hits)
        else:
            for kw in entry.keywords_norm:
                if fuzzy and len(kw) >= 3:
                    part = fuzz.partial_ratio(kw, norm, score_cutoff=80) / 100.0
                    kw_score = max(kw_score, 0.5 * part)
        for kw in kw_hits:
            if kw not in reasons:
                reasons.append(kw)

        score = _combine(query_cov, best_q_score, kw_score)
        return Candidate(
            id=entry.doc.id,
            score=round(min(1.0, max(0.0, score)), 4),
            question=entry.doc.questions[best_q] if entry.doc.questions else "",
            reasons=tuple(reasons),
        )

    def match(self, text: str, *, limit: int = 5, max_chars: int = 300) -> list[Candidate]:
        """Ranked candidates for a message (at most `limit`); the message is cut to `max_chars` first."""
        query = self._features(text[:max_chars])
        if not query.weights:
            return []
        retrieved = self._retrieve(query, max(RETRIEVE_K, limit))
        # Fuzzy similarity is the costly part; a candidate with under a third of the leader's overlap cannot
        # catch up through it, so it is scored on overlap alone.
        floor = FUZZY_FLOOR * retrieved[0][1] if retrieved else 0.0
        scored = [self._score(query, self._entries[i], fuzzy=r >= floor) for i, r in retrieved]
        factor = (ACK_FACTOR if is_acknowledgement(query.norm) else 1.0) * (
            ELSEWHERE_FACTOR if mentions_elsewhere(query.norm) else 1.0
        )
        if not any(_is_topic(key) for key in query.weights):
            factor *= NO_TOPIC_FACTOR
        if factor != 1.0:
            scored = [Candidate(c.id, round(c.score * factor, 4), c.question, c.reasons) for c in scored]
        scored.sort(key=lambda c: (-c.score, c.id))
        return scored[:limit]


def _combine(query_cov: float, question_score: float, keyword_score: float) -> float:
    """Blend the evidence into the 0..1 score the bands read."""
    return SCALE * (W_QUERY * query_cov + W_QUESTION * question_score + W_KEYWORD * keyword_score)


def build_index(
    docs: Iterable[FaqDoc],
    *,
    synonyms: Mapping[str, Sequence[str]] | None = None,
    brand_words: Sequence[str] = (),
    tokenizer: Tokenizer | None = None,
) -> FaqIndex:
    """Tokenise every entry once and build the inverted index; slow (jieba load): run it in a thread."""
    docs = list(docs)
    synonyms = synonyms or {}
    if tokenizer is None:
        user_words = [kw for d in docs for kw in d.keywords] + list(brand_words)
        tokenizer = Tokenizer(user_words, synonyms, normalizer=Normalizer(synonyms))
    norm = tokenizer.normalize

    def feats(text: str) -> set[str]:
        n = norm(text)
        words, modal, grams = _segment(tokenizer, n)
        return {"w" + w for w in words} | {"f" + w for w in modal} | {"b" + g for g in grams} | _concepts(n)

    raw: list[tuple[FaqDoc, list[set[str]], set[str], set[str]]] = []
    df: dict[str, float] = {}
    postings: dict[str, list[int]] = {}
    for pos, doc in enumerate(docs):
        q_feats = [feats(q) for q in doc.questions]
        primary: set[str] = set().union(*q_feats) if q_feats else set()
        for kw in doc.keywords:
            primary |= feats(kw)
        answer = feats(doc.answer) - primary if doc.answer else set()
        raw.append((doc, q_feats, primary, answer))
        for f in primary:
            df[f] = df.get(f, 0.0) + 1.0
            postings.setdefault(f, []).append(pos)
        for f in answer:
            # Answer text is long: a word there is weaker evidence that the entry is about it.
            df[f] = df.get(f, 0.0) + 0.5
            postings.setdefault(f, []).append(pos)

    n = max(len(docs), 1)
    idf = {f: math.log(1.0 + n / d) for f, d in df.items()}

    def mass(fs: set[str]) -> float:
        return sum(idf[f] * _kind_weight(f) for f in fs)

    entries = [
        _Entry(
            doc=doc,
            questions_norm=tuple(norm(q) for q in doc.questions),
            question_feats=tuple({f: idf[f] * _kind_weight(f) for f in fs} for fs in q_feats),
            question_mass=tuple(mass(fs) for fs in q_feats),
            keywords_norm=tuple(norm(k) for k in doc.keywords),
            primary=frozenset(primary),
            answer=frozenset(answer),
        )
        for doc, q_feats, primary, answer in raw
    ]
    return FaqIndex(entries, tokenizer, df, postings)


def band(score: float, answer: float, suggest: float) -> Band:
    """Map a score to a band: answer >= answer, suggest >= suggest, else silent."""
    if score >= answer:
        return "answer"
    if score >= suggest:
        return "suggest"
    return "silent"


def decide(
    index: FaqIndex,
    text: str,
    *,
    answer: float,
    suggest: float,
    menu_size: int = 3,
    max_chars: int = 300,
) -> Decision:
    """Match a message and choose the band; two close, strong candidates make a menu, not an answer."""
    candidates = index.match(text, limit=max(menu_size, 2), max_chars=max_chars)
    if not candidates:
        return Decision("silent", (), None)
    best = candidates[0]
    chosen = band(best.score, answer, suggest)
    if chosen == "answer" and len(candidates) > 1:
        runner_up = candidates[1]
        if runner_up.score >= suggest and best.score - runner_up.score < MARGIN:
            chosen = "suggest"
    menu = tuple(c for c in candidates[:menu_size] if c.score >= suggest) or (best,)
    return Decision(chosen, menu, best)
