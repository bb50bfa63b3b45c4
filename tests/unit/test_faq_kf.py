"""The kf bot's decisions as tables: one customer message and the session in, what the bot does out."""

from __future__ import annotations

import datetime as dt

import pytest
from tests_support import ROOT

from bot import actions as act
from bot.clock import SHANGHAI
from bot.config import FaqSettings
from bot.content import load_library
from bot.deps import KfSessionView
from bot.events import KfCustomerMessage, RouteKey
from handlers import faq

SETTINGS = FaqSettings()
OPEN = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # Monday morning: people answer
CLOSED = dt.datetime(2026, 11, 23, 23, 30, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def snapshot():
    """The shipped 小禾母婴 library with its index."""
    import dataclasses

    loaded = load_library(ROOT / "content_library")
    return dataclasses.replace(loaded, index=faq.build_faq_index(loaded))


def decide(snapshot, text: str, view: KfSessionView | None = None, *, menu_id: str = "", human_open=True):
    return faq.decide_kf_reply(
        text, menu_id, view or KfSessionView(), snapshot, SETTINGS, human_open=human_open
    )


@pytest.mark.parametrize(
    ("text", "kind", "faq_id"),
    [
        ("宝宝八个月了，奶粉怎么冲泡？", "answer", "formula_brewing"),
        ("宝宝喝奶粉过敏怎么办", "answer", "formula_allergy"),
        ("奶粉", "menu", ""),
        ("会员", "menu", ""),
        ("这周末天气怎么样", "silent", ""),
        ("谢谢", "silent", ""),
        ("好的", "silent", ""),
        ("转人工", "handoff", ""),
        ("我要投诉你们的快递", "handoff", ""),
    ],
)
def test_one_message(snapshot, text: str, kind: str, faq_id: str) -> None:
    decision = decide(snapshot, text)
    assert decision.kind == kind
    assert decision.faq_id == faq_id
    if kind == "menu":
        assert 2 <= len(decision.items) <= SETTINGS.menu_size


def test_a_menu_click_answers_the_chosen_question(snapshot) -> None:
    decision = decide(snapshot, "奶粉怎么保存", menu_id="formula_storage")
    assert (decision.kind, decision.faq_id) == ("answer", "formula_storage")


def test_small_talk_is_not_a_miss_but_an_unanswerable_question_is(snapshot) -> None:
    assert decide(snapshot, "谢谢", KfSessionView(misses=1)).misses == 1
    first = decide(snapshot, "这周末天气怎么样")
    assert (first.kind, first.misses) == ("silent", 1)
    second = decide(snapshot, "你们老板是谁", KfSessionView(misses=1))
    assert (second.kind, second.reason) == ("handoff", "bot_missed")


def test_a_message_with_five_newer_ones_waiting_is_not_answered(snapshot) -> None:
    assert decide(snapshot, "奶粉怎么冲泡", KfSessionView(newer_messages=5)).kind == "superseded"
    assert decide(snapshot, "奶粉怎么冲泡", KfSessionView(newer_messages=4)).kind == "answer"


def test_while_a_person_serves_the_bot_is_quiet(snapshot) -> None:
    assert decide(snapshot, "奶粉怎么冲泡", KfSessionView(mode="human")).kind == "quiet"


def test_outside_service_hours_the_request_is_recorded_not_handed_off(snapshot) -> None:
    decision = decide(snapshot, "转人工", human_open=False)
    assert (decision.kind, decision.reason) == ("closed", "asked")
    event = _message("转人工")
    out = faq.kf_reply_actions(event, decision, snapshot, SETTINGS, CLOSED)
    kinds = [type(a).__name__ for a in out]
    assert kinds[0] == "RecordHandoff" and kinds[-2:] == ["UpdateKfSession", "SendKfText"]
    assert "KfHandOff" not in kinds
    assert out[0].outside_hours is True
    assert "明天 09:00" in out[-1].content


def test_handoff_moves_the_session_to_the_queue_and_tells_the_customer(snapshot) -> None:
    decision = decide(snapshot, "转人工")
    out = faq.kf_reply_actions(_message("转人工"), decision, snapshot, SETTINGS, OPEN)
    handoff = next(a for a in out if isinstance(a, act.KfHandOff))
    assert handoff.service_state == 2 and handoff.message
    session = next(a for a in out if isinstance(a, act.UpdateKfSession))
    assert session.mode == "human" and session.customer_wrote
    servicer = FaqSettings(handoff_to="servicer", servicer_userid="zhangmei", notify_guides=True)
    out = faq.kf_reply_actions(_message("转人工"), decision, snapshot, servicer, OPEN)
    handoff = next(a for a in out if isinstance(a, act.KfHandOff))
    assert (handoff.service_state, handoff.servicer_userid) == (3, "zhangmei")
    assert any(isinstance(a, act.NotifyStaff) and a.touser == ("zhangmei",) for a in out)


@pytest.mark.parametrize(("score", "suggested"), [(0.6, True), (0.2, False)])
def test_a_hand_off_carries_a_suggestion_only_when_one_is_worth_reading(snapshot, score, suggested) -> None:
    from handlers.faq_match import Candidate

    candidate = Candidate("formula_brewing", score, "奶粉怎么冲泡", ("奶粉",))
    decision = faq.KfDecision("handoff", reason="bot_missed", candidates=(candidate,))
    out = faq.kf_reply_actions(_message("奶粉冲了有结块咋整"), decision, snapshot, SETTINGS, OPEN)
    suggestions = [a for a in out if isinstance(a, act.SuggestToGuide)]
    assert bool(suggestions) is suggested
    if suggested:
        assert suggestions[0].faq_id == "formula_brewing" and "温开水" in suggestions[0].reply


@pytest.mark.parametrize(
    ("view", "now", "open_"),
    [
        (KfSessionView(last_customer_at=0.0, sent_since_customer=0), 47 * 3600, True),
        (KfSessionView(last_customer_at=0.0, sent_since_customer=0), 48 * 3600, False),
        (KfSessionView(last_customer_at=0.0, sent_since_customer=4), 60, True),
        (KfSessionView(last_customer_at=0.0, sent_since_customer=5), 60, False),
    ],
)
def test_the_kf_window_is_48_hours_and_5_messages(view: KfSessionView, now: float, open_: bool) -> None:
    assert faq.window_open(view, now) is open_


def test_guides_get_suggestions_only_from_guide_usable_entries(snapshot) -> None:
    best = faq.suggest_for_guide("奶粉怎么冲泡", snapshot, SETTINGS)
    assert best is not None and best.id == "formula_brewing"
    assert faq.suggest_for_guide("帮我订个酒店", snapshot, SETTINGS) is None


def _message(text: str) -> KfCustomerMessage:
    return KfCustomerMessage(
        app="kf_item",
        route_key=RouteKey("kf", "message", "text"),
        dedup_key=f"kf:msg:wk:{text}",
        msgid=f"m-{abs(hash(text))}",
        open_kfid="wkDEMOxiaohe0000000000000000001",
        external_userid="wmCUSTOMER",
        msg_type="text",
        content=text,
    )
