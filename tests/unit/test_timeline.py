"""handlers/timeline.py decisions, as tables: event in, actions out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import actions as act
from bot import events
from bot.wecom import callback
from handlers import timeline

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "callbacks"
CUST = "wmDEMO000000000000000000000000001"


def parse(name: str, app: str = "contact") -> events.Event:
    return callback.parse(app, (FIXTURES / name).read_text())


def kinds(actions: list[act.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


@pytest.mark.parametrize(
    ("fixture", "expected_kinds", "timeline_kind"),
    [
        (
            "contact__add_external_contact.xml",
            ["UpsertCustomer", "UpsertFollow", "RecordTimeline", "RefreshCustomer"],
            "contact_added",
        ),
        (
            "contact__add_half_external_contact.xml",
            ["UpsertCustomer", "UpsertFollow", "RecordTimeline", "RefreshCustomer"],
            "contact_added",
        ),
        ("contact__edit_external_contact.xml", ["RecordTimeline", "RefreshCustomer"], "contact_edited"),
        (
            "contact__del_external_contact.xml",
            ["EndFollow", "RecordTimeline", "RefreshCustomer"],
            "transferred",
        ),
        ("contact__del_follow_user.xml", ["EndFollow", "RecordTimeline"], "deleted_by_customer"),
        ("contact__transfer_fail.xml", ["RecordTimeline"], "transfer_failed"),
        ("contact__msg_audit_approved.xml", ["RecordTimeline"], "archive_consent"),
    ],
)
def test_contact_events(fixture: str, expected_kinds: list[str], timeline_kind: str) -> None:
    event = parse(fixture)
    out = timeline.contact_actions(event, 100.0)
    assert kinds(out) == expected_kinds
    entry = next(a for a in out if isinstance(a, act.RecordTimeline))
    assert (entry.external_userid, entry.kind, entry.source_key) == (CUST, timeline_kind, event.dedup_key)


def test_add_records_channel_and_half_add_status() -> None:
    out = timeline.contact_actions(parse("contact__add_external_contact.xml"), 100.0)
    assert out[0] == act.UpsertCustomer(CUST, first_state="store_12", seen_at=100.0)
    assert out[1] == act.UpsertFollow(CUST, "xiaolin", state="store_12", added_at=100.0, status="active")
    assert "store_12" in out[2].summary
    half = timeline.contact_actions(parse("contact__add_half_external_contact.xml"), 100.0)
    assert half[1].status == "half"


def test_delete_by_guide_without_transfer_ends_the_follow_only() -> None:
    text = (FIXTURES / "contact__del_external_contact.xml").read_text().replace("DELETE_BY_TRANSFER", "")
    out = timeline.contact_actions(callback.parse("contact", text), 5.0)
    assert out[0] == act.EndFollow(CUST, "xiaolin", reason="deleted_by_guide", ended_at=5.0)
    assert kinds(out) == ["EndFollow", "RecordTimeline"]


def test_group_join_records_only_customers() -> None:
    out = timeline.group_actions(parse("chat__update.xml"), 7.0)
    assert kinds(out) == ["UpsertCustomer", "RecordTimeline"]
    assert out[1].external_userid == CUST and out[1].kind == "group_joined"
    assert "扫码" in out[1].summary


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("kf_item__text.json", "kf_message"),
        ("kf_item__enter_session.json", "kf_session_entered"),
        ("kf_item__servicer_text.json", "kf_servicer_message"),
        ("kf_item__session_status_change.json", "kf_session_changed"),
        ("kf_item__msg_send_fail.json", "kf_send_failed"),
    ],
)
def test_kf_events(fixture: str, kind: str) -> None:
    event = parse(fixture, callback.KF_ITEM)
    out = timeline.kf_actions(event, 1.0)
    assert [a.kind for a in out if isinstance(a, act.RecordTimeline)] == [kind]


def test_kf_events_without_a_customer_are_not_on_a_timeline() -> None:
    event = parse("kf_item__servicer_status_change.json", callback.KF_ITEM)
    assert timeline.kf_actions(event, 1.0) == []
