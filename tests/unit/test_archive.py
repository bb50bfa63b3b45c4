"""Chat archive (会话内容存档): parsing, the RSA random key, and the ctypes adapter against a stub SDK.

The stub is a small C library compiled here with the Finance SDK's function signatures
(WeWorkFinanceSdk_C.h) and canned data; it is skipped only when gcc is missing, never under CI.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot import archive, errors, events
from bot.clock import FrozenClock
from bot.wecom import callback

CORP_ID = "ww_stub_corp"
SECRET = "stub-archive-secret"
RANDOM_KEY = "stubRandomKey0123456789abcdefXYZ"


def message(msgid: str, sender: str, text: str, *, tolist: list[str], roomid: str = "") -> dict[str, Any]:
    return {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": tolist,
        "roomid": roomid,
        "msgtime": 1_700_000_000_123,
        "msgtype": "text",
        "text": {"content": text},
    }


# --- parsing ---------------------------------------------------------------------------------------


def test_customer_message_is_in_the_customers_partition() -> None:
    msg = message("m1", "wmCUST1", "宝宝八个月了", tolist=["xiaolin"])
    event = callback.parse(callback.ARCHIVE_ITEM, json.dumps(msg, ensure_ascii=False))
    assert isinstance(event, events.ArchiveMessage)
    assert event.from_customer and event.from_id == "wmCUST1" and event.tolist == ("xiaolin",)
    assert event.partition == "cust:wmCUST1" and event.dedup_key == "archive:msg:m1"
    assert event.content == "宝宝八个月了" and event.msgtime == 1_700_000_000_123
    assert event.create_time == 1_700_000_000
    assert str(event.route_key) == "archive/send/text"


def test_guide_messages_are_not_the_customers() -> None:
    one_to_one = callback.parse_archive_item(message("m2", "xiaolin", "您好", tolist=["wmCUST1"]))
    assert isinstance(one_to_one, events.ArchiveMessage)
    assert not one_to_one.from_customer and one_to_one.partition == "cust:wmCUST1"
    in_group = callback.parse_archive_item(
        message("m3", "xiaolin", "大家好", tolist=["wmA", "wmB"], roomid="wrROOM")
    )
    assert in_group.partition == "chat:wrROOM"


def test_switch_and_missing_msgid() -> None:
    switch = callback.parse_archive_item({"msgid": "s1", "action": "switch", "time": 1_700_000_000_000})
    assert isinstance(switch, events.ArchiveMessage) and switch.action == "switch" and switch.content == ""
    with pytest.raises(errors.MalformedCallback):
        callback.parse_archive_item({"action": "send"})


def test_msgaudit_notify_becomes_archive_messages_waiting() -> None:
    xml = (
        "<xml><ToUserName><![CDATA[ww]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<AgentID>2000004</AgentID><Event><![CDATA[msgaudit_notify]]></Event></xml>"
    )
    event = callback.parse("contact", xml)
    assert isinstance(event, events.ArchiveMessagesWaiting)
    assert event.agent_id == "2000004" and event.partition == "archive"
    assert callback.parse("contact", xml).dedup_key == event.dedup_key  # a retry is the same delivery


# --- RSA random key --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def encrypt_key(key: rsa.RSAPrivateKey, plain: str) -> str:
    return base64.b64encode(key.public_key().encrypt(plain.encode(), padding.PKCS1v15())).decode()


def test_random_key_decrypts_with_pkcs1v15(private_key) -> None:
    assert archive.decrypt_random_key(private_key, encrypt_key(private_key, RANDOM_KEY)) == RANDOM_KEY


def test_private_key_from_settings(settings_factory, private_key, tmp_path) -> None:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    inline = settings_factory(**{"archive.enabled": True, "archive.private_key": pem})
    token = encrypt_key(private_key, "k")
    assert archive.decrypt_random_key(archive.load_private_key(inline), token) == "k"
    path = tmp_path / "archive.pem"
    path.write_text(pem)
    from_file = settings_factory(**{"archive.private_key_file": str(path)})
    assert archive.decrypt_random_key(archive.load_private_key(from_file), token) == "k"
    assert "BEGIN" not in repr(inline.archive)  # the key is a secret


def test_disabled_archive_loads_nothing(settings) -> None:
    assert archive.create_archive(settings) is None


def test_sdk_adapter_needs_its_library_and_secret(settings_factory) -> None:
    with pytest.raises(errors.ConfigError, match="sdk_library"):
        archive.create_archive(settings_factory(**{"archive.enabled": True, "archive.adapter": "sdk"}))


# --- ctypes adapter against a stub SDK -------------------------------------------------------------


def c_literal(text: str) -> str:
    return '"' + "".join(f"\\{b:03o}" for b in text.encode()) + '"'


STUB_C = r"""
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>

typedef struct Slice_t { char* buf; int len; } Slice_t;
typedef struct { int inited; } Sdk;

static const unsigned long long SEQS[] = { %(seqs)s };
static const char* ITEMS[] = { %(items)s };
static const char* ENC[] = { %(encs)s };
static const char* PLAIN[] = { %(plains)s };
static const int N = %(n)d;
static int destroyed = 0;
static unsigned int last_limit = 0;
static int last_timeout = 0;

static void put(Slice_t* s, const char* text) {
    size_t n = strlen(text);
    free(s->buf);
    s->buf = malloc(n + 1);
    memcpy(s->buf, text, n + 1);
    s->len = (int)n;
}

void* NewSdk(void) { Sdk* s = calloc(1, sizeof(Sdk)); return s; }
int Init(void* sdk, const char* corpid, const char* secret) {
    if (strcmp(corpid, %(corp)s) != 0 || strcmp(secret, %(secret)s) != 0) return 41001;
    ((Sdk*)sdk)->inited = 1;
    return 0;
}
int GetChatData(void* sdk, unsigned long long seq, unsigned int limit, const char* proxy,
                const char* passwd, int timeout, Slice_t* out) {
    if (!((Sdk*)sdk)->inited) return 10002;
    last_limit = limit; last_timeout = timeout;
    char* buf = malloc(1 << 20);
    strcpy(buf, "{\"errcode\":0,\"errmsg\":\"ok\",\"chatdata\":[");
    unsigned int count = 0;
    for (int i = 0; i < N && count < limit; i++) {
        if (SEQS[i] <= seq) continue;
        if (count++) strcat(buf, ",");
        strcat(buf, ITEMS[i]);
    }
    strcat(buf, "]}");
    put(out, buf);
    free(buf);
    return 0;
}
int DecryptData(const char* key, const char* msg, Slice_t* out) {
    if (strcmp(key, %(key)s) != 0) return 10005;
    for (int i = 0; i < N; i++) if (strcmp(msg, ENC[i]) == 0) { put(out, PLAIN[i]); return 0; }
    return 10006;
}
Slice_t* NewSlice(void) { return calloc(1, sizeof(Slice_t)); }
void FreeSlice(Slice_t* s) { if (s) { free(s->buf); free(s); } }
char* GetContentFromSlice(Slice_t* s) { return s->buf; }
int GetSliceLen(Slice_t* s) { return s->len; }
void DestroySdk(void* sdk) { destroyed++; free(sdk); }
int StubDestroyed(void) { return destroyed; }
unsigned int StubLastLimit(void) { return last_limit; }
int StubLastTimeout(void) { return last_timeout; }
"""


@pytest.fixture(scope="module")
def stub_messages() -> list[dict[str, Any]]:
    return [
        message("m1", "wmCUST1", "宝宝八个月了", tolist=["xiaolin"]),
        message("m2", "xiaolin", "您好，宝宝多大啦", tolist=["wmCUST1"]),
        message("m3", "wmCUST2", "预产期明年三月", tolist=["xiaolin", "wmCUST1"], roomid="wrROOM"),
        message("m4", "wmCUST3", "不该出现", tolist=["xiaolin"]),
    ]


@pytest.fixture(scope="module")
def stub_library(tmp_path_factory, private_key, stub_messages) -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is required under CI to build the Finance SDK stub")
        pytest.skip("gcc is not installed: cannot build the Finance SDK stub library")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    items, encs, plains = [], [], []
    for i, msg in enumerate(stub_messages, start=1):
        # The last item's random key was encrypted for another key pair (an old publickey_ver).
        key_for = other_key if msg["msgid"] == "m4" else private_key
        enc = f"ENC-{i}"
        item = {
            "seq": i * 10,
            "msgid": msg["msgid"],
            "publickey_ver": 1,
            "encrypt_random_key": encrypt_key(key_for, RANDOM_KEY),
            "encrypt_chat_msg": enc,
        }
        items.append(c_literal(json.dumps(item)))
        encs.append(c_literal(enc))
        plains.append(c_literal(json.dumps(msg, ensure_ascii=False)))
    source = STUB_C % {
        "seqs": ", ".join(str(i * 10) for i in range(1, len(stub_messages) + 1)),
        "items": ", ".join(items),
        "encs": ", ".join(encs),
        "plains": ", ".join(plains),
        "n": len(stub_messages),
        "corp": c_literal(CORP_ID),
        "secret": c_literal(SECRET),
        "key": c_literal(RANDOM_KEY),
    }
    folder = tmp_path_factory.mktemp("finance_sdk_stub")
    (folder / "stub.c").write_text(source)
    library = folder / "libWeWorkFinanceSdk_C.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O0", "-o", str(library), str(folder / "stub.c")],
        check=True,
        capture_output=True,
    )
    return str(library)


async def test_sdk_adapter_pulls_pages_and_decrypts(stub_library, private_key, stub_messages) -> None:
    sdk = archive.FinanceSdkArchive(stub_library, CORP_ID, SECRET, private_key, timeout=7)
    first = await sdk.fetch(0, 2)
    assert [r.seq for r in first.records] == [10, 20] and first.next_seq == 20
    assert [r.message for r in first.records] == stub_messages[:2]
    assert first.records[0].message["text"]["content"] == "宝宝八个月了"
    assert sdk._lib.StubLastLimit() == 2 and sdk._lib.StubLastTimeout() == 7
    second = await sdk.fetch(first.next_seq, 2)
    # m4's random key belongs to another key pair: counted, skipped, and its seq still passed.
    assert [r.msgid for r in second.records] == ["m3"] and second.undecryptable == 1
    assert second.next_seq == 40
    assert (await sdk.fetch(second.next_seq, 2)).records == []
    event = callback.parse_archive_item(second.records[0].message)
    assert isinstance(event, events.ArchiveMessage) and event.roomid == "wrROOM"
    await sdk.close()
    assert sdk._lib.StubDestroyed() == 1
    await sdk.close()  # idempotent
    with pytest.raises(archive.ArchiveError):
        await sdk.fetch(0, 1)


def test_sdk_init_failure_is_a_config_error(stub_library, private_key) -> None:
    with pytest.raises(errors.ConfigError, match="41001"):
        archive.FinanceSdkArchive(stub_library, CORP_ID, "wrong", private_key)


def test_create_archive_loads_the_sdk_when_configured(settings_factory, stub_library, private_key) -> None:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings = settings_factory(
        **{
            "wecom.corp_id": CORP_ID,
            "archive.enabled": True,
            "archive.adapter": "sdk",
            "archive.sdk_library": stub_library,
            "archive.secret": SECRET,
            "archive.private_key": pem,
        }
    )
    sdk = archive.create_archive(settings)
    assert isinstance(sdk, archive.FinanceSdkArchive)
    page = sdk.fetch_blocking(0, 1000)
    assert [r.msgid for r in page.records] == ["m1", "m2", "m3"]


def test_missing_library_is_a_config_error(private_key, tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="cannot load"):
        archive.FinanceSdkArchive(str(tmp_path / "nope.so"), CORP_ID, SECRET, private_key)


@pytest.mark.parametrize(
    ("now", "interval", "due"),
    [
        (1000.0, 300, 1200.0),
        (1200.0, 300, 1500.0),  # exactly on a boundary: the next one, never now again
        (1199.9, 300, 1200.0),
        (59.0, 60, 60.0),
    ],
)
def test_next_poll_at(now: float, interval: int, due: float) -> None:
    assert archive.next_poll_at(now, interval) == due


def test_poll_timer_pulls_once_per_interval_and_arms_the_next(settings_factory) -> None:
    settings = settings_factory(**{"archive.enabled": True, "archive.poll_interval_seconds": 60})
    clock = FrozenClock(6000.5)
    first = archive.schedule_next_poll(clock.timestamp(), settings)
    assert (first.key, first.kind, first.due_at, first.payload) == (
        "archive_poll:60:101",
        "archive_poll",
        6060.0,
        {"interval": 60, "slot": 101},
    )
    clock.advance(seconds=60)
    timer = SimpleNamespace(key=first.key, payload=first.payload)
    pull, nxt = archive.on_archive_poll(timer, SimpleNamespace(settings=settings, clock=clock))
    assert pull.idem_key == "archivesync:archive_poll:60:101"
    assert (nxt.key, nxt.due_at) == ("archive_poll:60:102", 6120.0)
    off = settings.with_overrides(**{"archive.enabled": False})
    assert archive.on_archive_poll(timer, SimpleNamespace(settings=off, clock=clock)) == []
