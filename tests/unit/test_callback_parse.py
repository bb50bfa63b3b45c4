"""Callback plaintext -> typed events: one fixture per route key, dedup keys, unsafe XML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import errors, events
from bot.wecom import callback
from bot.wecom.crypto import CallbackCrypto, envelope_xml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "callbacks"

# fixture stem -> (expected class, expected route key as text)
EXPECTED = {
    "contact__add_external_contact": (
        events.ContactAdded,
        "event/change_external_contact/add_external_contact",
    ),
    "contact__add_half_external_contact": (
        events.ContactHalfAdded,
        "event/change_external_contact/add_half_external_contact",
    ),
    "contact__edit_external_contact": (
        events.ContactEdited,
        "event/change_external_contact/edit_external_contact",
    ),
    "contact__del_external_contact": (
        events.ContactDeletedByGuide,
        "event/change_external_contact/del_external_contact",
    ),
    "contact__del_follow_user": (
        events.ContactDeletedByCustomer,
        "event/change_external_contact/del_follow_user",
    ),
    "contact__transfer_fail": (events.ContactTransferFailed, "event/change_external_contact/transfer_fail"),
    "contact__msg_audit_approved": (
        events.ArchiveConsent,
        "event/change_external_contact/msg_audit_approved",
    ),
    "chat__create": (events.GroupCreated, "event/change_external_chat/create"),
    "chat__update": (events.GroupUpdated, "event/change_external_chat/update"),
    "chat__dismiss": (events.GroupDismissed, "event/change_external_chat/dismiss"),
    "tag__create": (events.CorpTagChanged, "event/change_external_tag/create"),
    "tag__update": (events.CorpTagChanged, "event/change_external_tag/update"),
    "tag__delete": (events.CorpTagChanged, "event/change_external_tag/delete"),
    "tag__shuffle": (events.CorpTagChanged, "event/change_external_tag/shuffle"),
    "kf__kf_msg_or_event": (events.KfMessagesWaiting, "event/kf_msg_or_event"),
    "app__text": (events.StaffMessage, "message/text"),
    "app__image": (events.StaffMessage, "message/image"),
    "app__voice": (events.StaffMessage, "message/voice"),
    "app__video": (events.StaffMessage, "message/video"),
    "app__location": (events.StaffMessage, "message/location"),
    "app__link": (events.StaffMessage, "message/link"),
    "app__subscribe": (events.AppEvent, "event/subscribe"),
    "app__unsubscribe": (events.AppEvent, "event/unsubscribe"),
    "app__enter_agent": (events.AppEvent, "event/enter_agent"),
    "app__LOCATION": (events.AppEvent, "event/LOCATION"),
    "app__click": (events.AppEvent, "event/click"),
    "app__view": (events.AppEvent, "event/view"),
    "app__scancode_push": (events.AppEvent, "event/scancode_push"),
    "app__scancode_waitmsg": (events.AppEvent, "event/scancode_waitmsg"),
    "app__pic_sysphoto": (events.AppEvent, "event/pic_sysphoto"),
    "app__pic_photo_or_album": (events.AppEvent, "event/pic_photo_or_album"),
    "app__pic_weixin": (events.AppEvent, "event/pic_weixin"),
    "app__location_select": (events.AppEvent, "event/location_select"),
    "app__template_card_event": (events.AppEvent, "event/template_card_event"),
    "robot__text": (events.RobotMessage, "robot/text"),
    "robot__event": (events.RobotEvent, "robot/event/enter_chat"),
    "kf_item__text": (events.KfCustomerMessage, "kf/message/text"),
    "kf_item__servicer_text": (events.KfServicerMessage, "kf/servicer_message/text"),
    "kf_item__enter_session": (events.KfSessionEntered, "kf/event/enter_session"),
    "kf_item__msg_send_fail": (events.KfSendFailed, "kf/event/msg_send_fail"),
    "kf_item__servicer_status_change": (events.KfServicerStatusChanged, "kf/event/servicer_status_change"),
    "kf_item__session_status_change": (events.KfSessionStatusChanged, "kf/event/session_status_change"),
    "kf_item__user_recall_msg": (events.KfOtherEvent, "kf/event/user_recall_msg"),
    "shop__order_paid": (events.OrderPaid, "shop/order_paid"),
    "link__clicked": (events.LinkClicked, "link/clicked"),
}


def load(stem: str) -> events.Event:
    """Parse a fixture the way the inbox does."""
    path = next(FIXTURES.glob(f"{stem}.*"))
    source = stem.split("__", 1)[0]
    apps = {
        "robot": "robot",
        "kf_item": callback.KF_ITEM,
        "kf": "kf",
        "shop": callback.SHOP,
        "link": callback.LINK,
    }
    app = apps.get(source, "contact")
    return callback.parse(app, path.read_text(encoding="utf-8"))


def test_every_fixture_has_an_expectation_and_back() -> None:
    stems = {p.stem for p in FIXTURES.iterdir() if p.suffix in (".xml", ".json")}
    assert stems == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_fixture_parses_to_its_typed_event(stem: str) -> None:
    cls, key = EXPECTED[stem]
    event = load(stem)
    assert type(event) is cls
    assert str(event.route_key) == key
    assert event.dedup_key


def test_contact_added_fields() -> None:
    event = load("contact__add_external_contact")
    assert isinstance(event, events.ContactAdded)
    assert (event.userid, event.external_userid, event.state, event.welcome_code) == (
        "xiaolin",
        "wmDEMO000000000000000000000000001",
        "store_12",
        "WELCOMECODE",
    )
    assert event.create_time == 1795000000
    assert event.partition == "cust:wmDEMO000000000000000000000000001"


def test_group_update_reads_member_list() -> None:
    event = load("chat__update")
    assert isinstance(event, events.GroupUpdated)
    assert event.mem_change_list == ("wmDEMO000000000000000000000000001", "zhangmei")
    assert (event.update_detail, event.join_scene, event.mem_change_cnt) == ("add_member", 3, 2)


def test_kf_event_item_takes_customer_from_event_body() -> None:
    event = load("kf_item__enter_session")
    assert isinstance(event, events.KfSessionEntered)
    assert event.external_userid == "wmDEMO000000000000000000000000001"
    assert event.welcome_code == "aaaaaa"
    assert event.dedup_key == "kf:msg:wkDEMOxiaohe0000000000000000001:from_msgid_4622416642169452485"


def test_order_paid_fields_and_dedup_by_order_id() -> None:
    event = load("shop__order_paid")
    assert isinstance(event, events.OrderPaid)
    assert (event.order_id, event.amount_cents, event.paid_at) == ("SO20261122001", 25900, 1795314600.0)
    assert (event.dedup_key, event.partition) == (
        "order:SO20261122001",
        "cust:wmDEMO000000000000000000000000001",
    )
    assert event.items[0]["qty"] == 2


def test_clicks_dedup_per_token_and_minute() -> None:
    event = load("link__clicked")
    assert isinstance(event, events.LinkClicked)
    assert (event.enrollment_id, event.step_id, event.clicked_at) == (7, "day3_recall", 1795314630.5)
    assert event.partition == "cust:wmDEMO000000000000000000000000001"
    same_minute = callback.click_plaintext(event.token, 7, event.external_userid, "day3_recall", 1795314659.0)
    next_minute = callback.click_plaintext(event.token, 7, event.external_userid, "day3_recall", 1795314660.0)
    assert callback.parse(callback.LINK, same_minute).dedup_key == event.dedup_key
    assert callback.parse(callback.LINK, next_minute).dedup_key != event.dedup_key


def test_same_second_contact_events_for_two_customers_do_not_collide() -> None:
    """The doc's FromUserName+CreateTime key would merge these two (wecom-api.md §2.6)."""
    text = (FIXTURES / "contact__add_external_contact.xml").read_text()
    other = text.replace("wmDEMO000000000000000000000000001", "wmDEMO000000000000000000000000002")
    first, second = callback.parse("contact", text), callback.parse("contact", other)
    assert first.create_time == second.create_time
    assert first.dedup_key != second.dedup_key


def test_a_retry_has_the_same_dedup_key() -> None:
    text = (FIXTURES / "contact__del_follow_user.xml").read_text()
    assert callback.parse("contact", text).dedup_key == callback.parse("contact", text).dedup_key


def test_kf_callback_dedup_is_by_token() -> None:
    text = (FIXTURES / "kf__kf_msg_or_event.xml").read_text()
    event = callback.parse("kf", text)
    assert event.dedup_key.endswith("ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR")
    assert event.partition == "kf:wkDEMOxiaohe0000000000000000001"


@pytest.mark.parametrize(
    "plaintext",
    [
        "<xml><MsgType>event</MsgType><Event>brand_new_event</Event><CreateTime>1</CreateTime></xml>",
        "<xml><MsgType>event</MsgType><Event>change_external_contact</Event>"
        "<ChangeType>future_change</ChangeType><ExternalUserID>wm1</ExternalUserID></xml>",
        "<xml><MsgType>miniprogram_notice</MsgType><MsgId>1</MsgId></xml>",
    ],
)
def test_unknown_events_are_kept_not_dropped(plaintext: str) -> None:
    event = callback.parse("contact", plaintext)
    assert isinstance(event, events.UnknownEvent)
    assert dict(event.fields)["MsgType"]


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<xml><Encrypt>unterminated",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>',
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
        b"<root><Encrypt>x</Encrypt></root>",
    ],
)
def test_malformed_or_unsafe_xml_is_refused(body: bytes) -> None:
    crypto = CallbackCrypto("tok", "ZGVtb2NvbnRhY3RrZXkwMTIzNDU2Nzg5YWJjZGVmMDE", "corp")
    with pytest.raises(errors.MalformedCallback):
        callback.open_envelope("contact", crypto, {}, body)


def test_envelope_round_trip_and_bad_signature() -> None:
    crypto = CallbackCrypto("tok", "ZGVtb2NvbnRhY3RrZXkwMTIzNDU2Nzg5YWJjZGVmMDE", "corp")
    plaintext = (FIXTURES / "contact__del_follow_user.xml").read_text()
    encrypt, signature = crypto.encrypt(plaintext, "1795000000", "n1")
    body = envelope_xml("corp", "1000002", encrypt).encode()
    query = {"msg_signature": signature, "timestamp": "1795000000", "nonce": "n1"}
    delivery = callback.open_envelope("contact", crypto, query, body)
    assert isinstance(delivery.event, events.ContactDeletedByCustomer)
    assert delivery.plaintext == plaintext
    with pytest.raises(errors.BadSignature):
        callback.open_envelope("contact", crypto, {**query, "nonce": "n2"}, body)


def test_wrong_receive_id_is_refused() -> None:
    sender = CallbackCrypto("tok", "ZGVtb2NvbnRhY3RrZXkwMTIzNDU2Nzg5YWJjZGVmMDE", "other-corp")
    receiver = CallbackCrypto("tok", "ZGVtb2NvbnRhY3RrZXkwMTIzNDU2Nzg5YWJjZGVmMDE", "corp")
    encrypt, signature = sender.encrypt("<xml/>", "1", "n")
    with pytest.raises(errors.MalformedCallback):
        receiver.decrypt(signature, "1", "n", encrypt)


def test_robot_envelope_is_json() -> None:
    crypto = CallbackCrypto("tok", "ZGVtb2NvbnRhY3RrZXkwMTIzNDU2Nzg5YWJjZGVmMDE", "")
    plaintext = (FIXTURES / "robot__text.json").read_text()
    encrypt, signature = crypto.encrypt(plaintext, "1", "n")
    delivery = callback.open_envelope(
        "robot",
        crypto,
        {"msg_signature": signature, "timestamp": "1", "nonce": "n"},
        json.dumps({"encrypt": encrypt}).encode(),
    )
    assert isinstance(delivery.event, events.RobotMessage)
    assert delivery.event.content.endswith("今天有什么活动")
    with pytest.raises(errors.MalformedCallback):
        callback.open_envelope("robot", crypto, {}, b"[1, 2]")


def test_crypto_matches_the_documented_vector() -> None:
    """wecom-api.md §2.4 self-test vector."""
    crypto = CallbackCrypto("emuToken", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", "ww1234567890abcdef")
    encrypt = "x6vyfrfXtFf8dewTSPkTUZsNYqUPrb3qB+K+AAnijuoJH39DpOSzQJFXINQAQS7buAZBI//VNssyKhj9Cj41tA=="
    assert crypto.decrypt("06ee22384eaee26c53b641ecb4469823883beee8", "1700000000", "nonce123", encrypt) == (
        "hello-wecom"
    )


@pytest.mark.parametrize(
    "plaintext",
    [
        '<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><MsgType>&a;</MsgType></xml>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><xml/>',
        "<xml><MsgType>text</MsgType>",
        "<notxml><MsgType>text</MsgType></notxml>",
    ],
)
def test_decrypted_payload_with_dtd_or_bad_xml_is_refused(plaintext: str) -> None:
    with pytest.raises(errors.MalformedCallback):
        callback.parse("contact", plaintext)
