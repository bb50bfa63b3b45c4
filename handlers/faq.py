"""FAQ bot in 微信客服 (kf), hand-off to a person, and suggested replies for guides.

Triggers: KfCustomerMessage (text, or a click on a menu we sent), KfSessionEntered (welcome
within the code's 20 s), KfSessionStatusChanged and KfServicerMessage (a person took over or the
session ended). Actions: SendKfText, SendKfMenu, SendKfEventMessage, KfHandOff, UpdateKfSession,
RecordHandoff, SuggestToGuide, NotifyStaff. Idempotency: every reply is keyed by the customer
message it answers (`kf:reply:{open_kfid}:{msgid}`); kf/send_msg also carries a msgid derived
from that key, so WeCom drops a replayed send. Config: `faq.*`; content: `content_library/`
(faq.yaml, handoff.yaml, synonyms.yaml).

WeCom's rules (wecom-api.md §8): the bot may send only while the session is new or bot-served
(states 0/1), at most 5 messages within 48 h of the customer's last message; while a person
serves (state 3) the bot stays quiet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import actions as act
from bot import events as ev
from bot.config import FaqSettings
from bot.content import ContentSnapshot, format_next_open, is_open, next_open, render
from bot.deps import Deps, KfSessionView
from bot.router import Router
from bot.text import normalize
from handlers import faq_match

router = Router("faq")

KF_WINDOW_SECONDS = 48 * 3600
KF_MAX_MESSAGES = 5
# Acknowledgements and greetings: the bot stays silent and does not count them as misses.
SMALL_TALK = frozenset(
    {
        "好的",
        "好",
        "谢谢",
        "谢了",
        "多谢",
        "收到",
        "嗯",
        "嗯嗯",
        "ok",
        "okay",
        "在吗",
        "在么",
        "你好",
        "您好",
        "哈喽",
        "hi",
        "hello",
    }
)

Kind = Literal["answer", "menu", "handoff", "closed", "silent", "quiet", "superseded"]


@dataclass(frozen=True)
class KfDecision:
    """What the bot does with one customer message."""

    kind: Kind
    faq_id: str = ""
    text: str = ""
    items: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    score: float = 0.0
    misses: int = 0
    candidates: tuple[Any, ...] = field(default=(), compare=False)


def window_open(view: KfSessionView, now: float) -> bool:
    """True while kf still lets us send: within 48 h and under 5 messages since the customer wrote."""
    return now - view.last_customer_at < KF_WINDOW_SECONDS and view.sent_since_customer < KF_MAX_MESSAGES


_INDEXES: dict[str, faq_match.FaqIndex] = {}


def build_faq_index(snapshot: ContentSnapshot) -> faq_match.FaqIndex:
    """The matcher's index for a content snapshot (run in a thread by the content store).

    Indexes are kept by content digest: replicas in one process (tests) and a library that
    flips back to an earlier version do not pay for jieba and the index twice.
    """
    if snapshot.digest not in _INDEXES:
        if len(_INDEXES) >= 4:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[snapshot.digest] = _build(snapshot)
    return _INDEXES[snapshot.digest]


def _build(snapshot: ContentSnapshot) -> faq_match.FaqIndex:
    docs = [
        faq_match.FaqDoc(e.id, tuple(e.questions), tuple(e.keywords), e.answer)
        for e in snapshot.faq.faqs
        if e.enabled
    ]
    return faq_match.build_index(
        docs, synonyms=snapshot.synonyms.synonyms, brand_words=tuple(snapshot.synonyms.brand_words)
    )


def wants_person(normalized: str, snapshot: ContentSnapshot) -> str:
    """'asked' or 'complaint' when the customer asks for a person or complains, else ''."""
    synonyms = snapshot.synonyms.synonyms
    if any(normalize(p, synonyms) in normalized for p in snapshot.handoff.phrases):
        return "asked"
    if any(normalize(w, synonyms) in normalized for w in snapshot.handoff.complaint_words):
        return "complaint"
    return ""


def kf_entries(snapshot: ContentSnapshot) -> dict[str, Any]:
    """FAQ entries the bot may answer in kf (enabled, channel kf or both), by id."""
    return {e.id: e for e in snapshot.faq.usable("kf")}


def decide_kf_reply(
    text: str,
    menu_id: str,
    view: KfSessionView,
    snapshot: ContentSnapshot,
    settings: FaqSettings,
    *,
    human_open: bool,
) -> KfDecision:
    """Answer, offer a menu, hand off, or stay silent — a pure decision on one customer message."""
    if view.mode == "human":
        return KfDecision("quiet", misses=view.misses)
    if view.newer_messages >= KF_MAX_MESSAGES:
        # kf counts our messages from the customer's LAST message: with 5 newer ones waiting, a reply
        # to this one would take a place the newer questions need (and the 6th would be refused).
        return KfDecision("superseded", misses=view.misses)
    entries = kf_entries(snapshot)
    if menu_id and menu_id in entries:
        return KfDecision("answer", faq_id=menu_id, score=1.0)
    normalized = normalize(text, snapshot.synonyms.synonyms)
    reason = wants_person(normalized, snapshot)
    decision = faq_match.decide(
        snapshot.index,
        text,
        answer=settings.bands.answer,
        suggest=settings.bands.suggest,
        menu_size=settings.menu_size,
        max_chars=settings.max_query_chars,
    )
    candidates = tuple(c for c in decision.candidates if c.id in entries)
    if reason:
        return KfDecision("handoff" if human_open else "closed", reason=reason, candidates=candidates)
    if normalized in SMALL_TALK or len(normalized) <= 1:
        return KfDecision("silent", misses=view.misses)
    best = candidates[0] if candidates else None
    if (
        best is not None
        and decision.band == "answer"
        and decision.best is not None
        and best.id == decision.best.id
    ):
        return KfDecision("answer", faq_id=best.id, score=best.score, candidates=candidates)
    if candidates and decision.band in ("answer", "suggest"):
        items = tuple((c.id, c.question) for c in candidates[: settings.menu_size])
        return KfDecision("menu", items=items, score=candidates[0].score, candidates=candidates)
    misses = view.misses + 1
    if misses >= settings.misses_before_handoff:
        return KfDecision("handoff" if human_open else "closed", reason="bot_missed", candidates=candidates)
    return KfDecision("silent", misses=misses, candidates=candidates)


def answer_text(entry: Any, snapshot: ContentSnapshot) -> str:
    """An FAQ answer with the brand filled in (kf does not know the customer's name)."""
    return render(entry.answer, {"brand": snapshot.faq.brand})


def kf_reply_actions(
    event: ev.KfCustomerMessage,
    decision: KfDecision,
    snapshot: ContentSnapshot,
    settings: FaqSettings,
    now: dt.datetime,
) -> list[act.Action]:
    """Turn a decision into actions: the reply, the session update, the records."""
    at = now.timestamp()
    cust, kfid, key = event.external_userid, event.open_kfid, event.msgid
    session = act.UpdateKfSession(kfid, cust, at, misses=decision.misses, customer_wrote=True)
    if decision.kind in ("quiet", "superseded"):
        return [session]
    if decision.kind == "answer":
        entry = kf_entries(snapshot)[decision.faq_id]
        reply = act.SendKfText(kfid, cust, answer_text(entry, snapshot), reply_to=key)
        return [act.UpdateKfSession(kfid, cust, at, misses=0, customer_wrote=True, sent=1), reply]
    if decision.kind == "menu":
        kf_texts = snapshot.faq.kf
        brand = {"brand": snapshot.faq.brand}
        menu = act.SendKfMenu(
            kfid,
            cust,
            render(kf_texts.menu_head, brand),
            decision.items,
            render(kf_texts.menu_tail, brand),
            key,
        )
        return [act.UpdateKfSession(kfid, cust, at, misses=0, customer_wrote=True, sent=1), menu]
    if decision.kind in ("handoff", "closed"):
        return handoff_actions(event, decision, snapshot, settings, now)
    return [session]


def handoff_actions(
    event: ev.KfCustomerMessage,
    decision: KfDecision,
    snapshot: ContentSnapshot,
    settings: FaqSettings,
    now: dt.datetime,
) -> list[act.Action]:
    """Hand the chat to a person (or, outside service hours, say when someone will answer)."""
    at = now.timestamp()
    cust, kfid, key = event.external_userid, event.open_kfid, event.msgid
    messages = snapshot.handoff.messages
    out: list[act.Action] = [
        act.RecordHandoff(kfid, cust, decision.reason, decision.kind == "closed", at, f"handoff:{kfid}:{key}")
    ]
    best = decision.candidates[0] if decision.candidates else None
    if best is not None and best.score >= settings.bands.suggest:  # only a reply worth a person's look
        entry = kf_entries(snapshot)[best.id]
        out.append(
            act.SuggestToGuide(
                cust,
                event.content,
                best.id,
                best.score,
                "suggest",
                answer_text(entry, snapshot),
                at,
                f"suggest:{kfid}:{key}",
                userid=settings.servicer_userid,
            )
        )
    if decision.kind == "closed":
        opens = next_open(snapshot.handoff.hours, now)
        text = render(
            messages.outside_hours, {"next_open": format_next_open(opens, now) if opens else "工作时间"}
        )
        out += [
            act.UpdateKfSession(kfid, cust, at, misses=0, customer_wrote=True, sent=1),
            act.SendKfText(kfid, cust, text, reply_to=key),
        ]
        return out
    state, servicer = (
        (3, settings.servicer_userid)
        if settings.handoff_to == "servicer" and settings.servicer_userid
        else (2, "")
    )
    text = render(messages.handoff, {"brand": snapshot.faq.brand})
    out += [
        act.UpdateKfSession(kfid, cust, at, mode="human", misses=0, customer_wrote=True, sent=1),
        act.KfHandOff(kfid, cust, text, state, reply_to=key, servicer_userid=servicer),
    ]
    if settings.notify_guides and settings.servicer_userid:
        summary = f"微信客服有客户需要人工处理（原因：{_REASONS.get(decision.reason, decision.reason)}）"
        out.append(act.NotifyStaff((settings.servicer_userid,), summary, key=f"handoff:{kfid}:{key}"))
    return out


_REASONS = {"asked": "客户要求人工", "complaint": "客户投诉", "bot_missed": "机器人连续未能回答"}


def suggest_for_guide(
    text: str, snapshot: ContentSnapshot, settings: FaqSettings
) -> faq_match.Candidate | None:
    """The best FAQ a guide could send for `text` (suggest band or better), if any."""
    decision = faq_match.decide(
        snapshot.index,
        text,
        answer=settings.bands.answer,
        suggest=settings.bands.suggest,
        menu_size=settings.menu_size,
        max_chars=settings.max_query_chars,
    )
    guide_ok = {e.id for e in snapshot.faq.usable("guide")}
    if decision.band == "silent":
        return None
    return next((c for c in decision.candidates if c.id in guide_ok), None)


# --- entry points ----------------------------------------------------------------------------------


@router.on(ev.KfCustomerMessage)
async def on_customer_message(event: ev.KfCustomerMessage, deps: Deps) -> list[act.Action]:
    """A customer wrote to kf: answer, offer a menu, hand off, or stay silent."""
    snapshot = deps.content()
    if snapshot is None or deps.kf_sessions is None or snapshot.index is None:
        return []
    view = await deps.kf_sessions.get(event.open_kfid, event.external_userid)
    now = deps.clock.now()
    if event.msg_type != "text":
        # Pictures, voice and the like: nothing to match; keep the window fresh, count no miss.
        return [
            act.UpdateKfSession(event.open_kfid, event.external_userid, now.timestamp(), customer_wrote=True)
        ]
    decision = decide_kf_reply(
        event.content,
        event.menu_id,
        view,
        snapshot,
        deps.settings.faq,
        human_open=is_open(snapshot.handoff.hours, now),
    )
    return kf_reply_actions(event, decision, snapshot, deps.settings.faq, now)


@router.on(ev.KfSessionEntered)
def on_session_entered(event: ev.KfSessionEntered, deps: Deps) -> list[act.Action]:
    """Greet a customer who opened the kf chat, with the single-use 20 s code."""
    snapshot = deps.content()
    if snapshot is None or not event.welcome_code or not snapshot.faq.kf.welcome:
        return []
    text = render(snapshot.faq.kf.welcome, {"brand": snapshot.faq.brand})
    return [
        act.SendKfEventMessage(
            event.welcome_code,
            event.external_userid,
            text,
            event_time=float(event.send_time or event.create_time),
        )
    ]


@router.on(ev.KfSessionStatusChanged)
def on_session_changed(event: ev.KfSessionStatusChanged, deps: Deps) -> list[act.Action]:
    """A person took the chat (1, 2) or it ended (3): the bot steps back, or serves again."""
    if not event.external_userid:
        return []
    mode = "bot" if event.change_type == 3 else "human"
    at = float(event.send_time) or deps.clock.timestamp()
    return [act.UpdateKfSession(event.open_kfid, event.external_userid, at, mode=mode, misses=0)]


@router.on(ev.KfServicerMessage)
def on_servicer_message(event: ev.KfServicerMessage, deps: Deps) -> list[act.Action]:
    """A servicer wrote from the WeCom client: a person serves, the bot stays quiet."""
    at = float(event.send_time) or deps.clock.timestamp()
    return [act.UpdateKfSession(event.open_kfid, event.external_userid, at, mode="human", sent=1)]
