"""WeComClient against a small scripted fake WeCom: exact requests, token handling, error mapping."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot import errors
from bot.clock import FrozenClock
from bot.kv import MemoryKV
from bot.metrics import REGISTRY
from bot.wecom.client import WeComClient
from bot.wecom.tokens import TokenCache

SECRETS = {"contact": "contact-secret", "kf": "kf-secret"}
AGENT_IDS = {"contact": 1000002, "kf": 1000003}
CORP_ID = "ww-test-corp"
HANG = "hang"


@dataclass
class Seen:
    """One request as the fake server received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None


@dataclass
class FakeWeCom:
    """Answers from a per-path script (dict = JSON, int = bare HTTP status, HANG = never answers)."""

    script: dict[str, list[Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    issued: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def on(self, api: str, *replies: Any) -> None:
        """Queue replies for `api` (e.g. "externalcontact/get"); afterwards it answers ok."""
        self.script.setdefault("/cgi-bin/" + api, []).extend(replies)

    def calls(self, api: str) -> list[Seen]:
        """The requests made to `api`."""
        return [s for s in self.seen if s.path == "/cgi-bin/" + api]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.content_type == "application/json":
            body = await request.json()
        elif request.content_type == "multipart/form-data":
            form = await request.post()
            body = {
                k: (v.filename, v.file.read()) if isinstance(v, web.FileField) else v for k, v in form.items()
            }
        self.seen.append(Seen(request.method, request.path, dict(request.query), body))
        queued = self.script.get(request.path)
        reply = queued.pop(0) if queued else None
        if reply is None and request.path == "/cgi-bin/gettoken":
            self.issued += 1
            reply = {"errcode": 0, "errmsg": "ok", "access_token": f"tok{self.issued}", "expires_in": 7200}
        if reply == HANG:
            await self.released.wait()  # set only at teardown: the client's timeout fires first
            reply = None
        if isinstance(reply, int):
            return web.Response(status=reply, text="upstream trouble")
        return web.json_response(reply or {"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def fake(aiohttp_server: Any):
    """The fake WeCom, served on a local port."""
    wecom = FakeWeCom()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", wecom.handle)
    server = await aiohttp_server(app)
    wecom.url = str(server.make_url(""))
    yield wecom
    wecom.released.set()


@pytest.fixture
async def session():
    """The injected HTTP session."""
    async with aiohttp.ClientSession() as http:
        yield http


MakeClient = Callable[..., WeComClient]


@pytest.fixture
def make_client(fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock) -> MakeClient:
    """A WeComClient pointed at the fake, with MemoryKV on the frozen clock."""

    def make(**overrides: Any) -> WeComClient:
        kv = MemoryKV(clock)
        options: dict[str, Any] = {
            "base_url": fake.url,
            "corp_id": CORP_ID,
            "secrets": SECRETS,
            "agent_ids": AGENT_IDS,
            "tokens": TokenCache(kv, clock, margin=300),
            "kv": kv,
            "clock": clock,
            "timeout": 5.0,
        }
        options.update(overrides)
        return WeComClient(session, **options)

    return make


@pytest.fixture
def client(make_client: MakeClient) -> WeComClient:
    """The default client."""
    return make_client()


def metric(name: str, **labels: str) -> float:
    """Current value of a sample in the process registry (0 when never recorded)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_token_travels_as_query_parameter_and_is_cached(fake: FakeWeCom, client: WeComClient) -> None:
    fake.on("externalcontact/get", {"errcode": 0, "errmsg": "ok", "external_contact": {"name": "A"}})
    answer = await client.get_external_contact("wm1")
    await client.get_external_contact("wm2", cursor="c2")
    assert answer["external_contact"] == {"name": "A"}
    assert fake.seen == [
        Seen("GET", "/cgi-bin/gettoken", {"corpid": CORP_ID, "corpsecret": "contact-secret"}),
        Seen("GET", "/cgi-bin/externalcontact/get", {"external_userid": "wm1", "access_token": "tok1"}),
        Seen(
            "GET",
            "/cgi-bin/externalcontact/get",
            {"external_userid": "wm2", "cursor": "c2", "access_token": "tok1"},
        ),
    ]


Call = Callable[[WeComClient], Awaitable[Any]]

REQUESTS: list[tuple[str, Call, str, str, dict[str, str], Any]] = [
    (
        "list",
        lambda c: c.list_external_contacts("zhangsan"),
        "contact",
        "GET externalcontact/list",
        {"userid": "zhangsan"},
        None,
    ),
    (
        "follow users",
        lambda c: c.get_follow_user_list(),
        "contact",
        "GET externalcontact/get_follow_user_list",
        {},
        None,
    ),
    (
        "remark",
        lambda c: c.remark("u1", "wm1", remark="VIP", remark_mobiles=["138"]),
        "contact",
        "POST externalcontact/remark",
        {},
        {"userid": "u1", "external_userid": "wm1", "remark": "VIP", "remark_mobiles": ["138"]},
    ),
    (
        "all tags",
        lambda c: c.get_corp_tag_list(),
        "contact",
        "POST externalcontact/get_corp_tag_list",
        {},
        {},
    ),
    (
        "some tags",
        lambda c: c.get_corp_tag_list(tag_ids=["et1"], group_ids=["eg1"]),
        "contact",
        "POST externalcontact/get_corp_tag_list",
        {},
        {"tag_id": ["et1"], "group_id": ["eg1"]},
    ),
    (
        "add tag",
        lambda c: c.add_corp_tag(["新客", {"name": "老客", "order": 2}], group_name="阶段"),
        "contact",
        "POST externalcontact/add_corp_tag",
        {},
        {"group_name": "阶段", "tag": [{"name": "新客"}, {"name": "老客", "order": 2}]},
    ),
    (
        "edit tag",
        lambda c: c.edit_corp_tag("et1", name="VIP"),
        "contact",
        "POST externalcontact/edit_corp_tag",
        {},
        {"id": "et1", "name": "VIP"},
    ),
    (
        "del tag",
        lambda c: c.del_corp_tag(tag_ids=["et1", "et2"]),
        "contact",
        "POST externalcontact/del_corp_tag",
        {},
        {"tag_id": ["et1", "et2"]},
    ),
    (
        "mark tag",
        lambda c: c.mark_tag("u1", "wm1", add_tag=["et1"]),
        "contact",
        "POST externalcontact/mark_tag",
        {},
        {"userid": "u1", "external_userid": "wm1", "add_tag": ["et1"]},
    ),
    (
        "add way",
        lambda c: c.add_contact_way(1, 2, user=["u1"], state="store_12", skip_verify=True),
        "contact",
        "POST externalcontact/add_contact_way",
        {},
        {"type": 1, "scene": 2, "user": ["u1"], "state": "store_12", "skip_verify": True},
    ),
    (
        "get way",
        lambda c: c.get_contact_way("cfg1"),
        "contact",
        "POST externalcontact/get_contact_way",
        {},
        {"config_id": "cfg1"},
    ),
    (
        "list ways",
        lambda c: c.list_contact_way(start_time=100, end_time=200, cursor="", limit=1000),
        "contact",
        "POST externalcontact/list_contact_way",
        {},
        {"start_time": 100, "end_time": 200, "limit": 1000},
    ),
    (
        "list ways, next page",
        lambda c: c.list_contact_way(cursor="c2"),
        "contact",
        "POST externalcontact/list_contact_way",
        {},
        {"cursor": "c2"},
    ),
    (
        "update way",
        lambda c: c.update_contact_way("cfg1", user=[], remark="r"),
        "contact",
        "POST externalcontact/update_contact_way",
        {},
        {"config_id": "cfg1", "remark": "r", "user": []},
    ),
    (
        "del way",
        lambda c: c.del_contact_way("cfg1"),
        "contact",
        "POST externalcontact/del_contact_way",
        {},
        {"config_id": "cfg1"},
    ),
    (
        "welcome",
        lambda c: c.send_welcome_msg("WC", "你好", [{"msgtype": "link", "link": {"title": "t"}}]),
        "contact",
        "POST externalcontact/send_welcome_msg",
        {},
        {
            "welcome_code": "WC",
            "text": {"content": "你好"},
            "attachments": [{"msgtype": "link", "link": {"title": "t"}}],
        },
    ),
    (
        "welcome text only",
        lambda c: c.send_welcome_msg("WC", "hi"),
        "contact",
        "POST externalcontact/send_welcome_msg",
        {},
        {"welcome_code": "WC", "text": {"content": "hi"}},
    ),
    (
        "app message",
        lambda c: c.send_app_message(["u1", "u2"], "提醒"),
        "contact",
        "POST message/send",
        {},
        {"touser": "u1|u2", "msgtype": "text", "agentid": 1000002, "text": {"content": "提醒"}},
    ),
    (
        "app message dedup",
        lambda c: c.send_app_message(["u1"], "x", app="kf", duplicate_check_interval=600),
        "kf",
        "POST message/send",
        {},
        {
            "touser": "u1",
            "msgtype": "text",
            "agentid": 1000003,
            "text": {"content": "x"},
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 600,
        },
    ),
    (
        "kf sync",
        lambda c: c.kf_sync_msg("wk1", cursor="c1", token="T"),
        "kf",
        "POST kf/sync_msg",
        {},
        {"cursor": "c1", "token": "T", "limit": 1000, "open_kfid": "wk1"},
    ),
    (
        "kf send",
        lambda c: c.kf_send_msg("wm1", "wk1", "text", {"content": "在的"}, msgid="m1"),
        "kf",
        "POST kf/send_msg",
        {},
        {"touser": "wm1", "open_kfid": "wk1", "msgid": "m1", "msgtype": "text", "text": {"content": "在的"}},
    ),
    (
        "kf on event",
        lambda c: c.kf_send_msg_on_event("CODE", "text", {"content": "欢迎"}),
        "kf",
        "POST kf/send_msg_on_event",
        {},
        {"code": "CODE", "msgtype": "text", "text": {"content": "欢迎"}},
    ),
    (
        "kf state",
        lambda c: c.kf_service_state_get("wk1", "wm1"),
        "kf",
        "POST kf/service_state/get",
        {},
        {"open_kfid": "wk1", "external_userid": "wm1"},
    ),
    (
        "kf trans",
        lambda c: c.kf_service_state_trans("wk1", "wm1", 3, "u1"),
        "kf",
        "POST kf/service_state/trans",
        {},
        {"open_kfid": "wk1", "external_userid": "wm1", "service_state": 3, "servicer_userid": "u1"},
    ),
    (
        "kf accounts",
        lambda c: c.kf_account_list(),
        "kf",
        "POST kf/account/list",
        {},
        {"offset": 0, "limit": 100},
    ),
    (
        "upload",
        lambda c: c.upload_media("image", "a.png", b"\x89PNG-bytes"),
        "contact",
        "POST media/upload",
        {"type": "image"},
        {"media": ("a.png", b"\x89PNG-bytes")},
    ),
]


@pytest.mark.parametrize(
    ("call", "app", "request_line", "query", "body"),
    [pytest.param(*row[1:], id=row[0]) for row in REQUESTS],
)
async def test_exact_request(
    fake: FakeWeCom,
    client: WeComClient,
    call: Call,
    app: str,
    request_line: str,
    query: dict[str, str],
    body: Any,
) -> None:
    await call(client)
    token_request, api_request = fake.seen
    # Each app authenticates with its own secret (kf/* with the kf app, the rest with contact).
    assert token_request.query["corpsecret"] == SECRETS[app]
    method, api = request_line.split(" ")
    assert (api_request.method, api_request.path) == (method, "/cgi-bin/" + api)
    assert api_request.query == {**query, "access_token": "tok1"}
    assert api_request.body == body


async def test_token_error_refreshes_once_and_replays(fake: FakeWeCom, client: WeComClient) -> None:
    fake.on("externalcontact/mark_tag", {"errcode": 42001, "errmsg": "access_token expired"})
    await client.mark_tag("u1", "wm1", add_tag=["et1"])
    calls = fake.calls("externalcontact/mark_tag")
    assert [c.query["access_token"] for c in calls] == ["tok1", "tok2"]
    assert calls[0].body == calls[1].body
    assert len(fake.calls("gettoken")) == 2
    # The fresh token is cached: the next call fetches nothing.
    await client.mark_tag("u1", "wm1", remove_tag=["et1"])
    assert len(fake.calls("gettoken")) == 2


async def test_token_error_is_replayed_only_once(fake: FakeWeCom, client: WeComClient) -> None:
    fake.on(
        "externalcontact/get",
        {"errcode": 40014, "errmsg": "invalid"},
        {"errcode": 42001, "errmsg": "expired"},
    )
    with pytest.raises(errors.TokenExpired) as caught:
        await client.get_external_contact("wm1")
    assert caught.value.errcode == 42001
    assert len(fake.calls("externalcontact/get")) == 2


async def test_upload_is_rebuilt_for_the_replay(fake: FakeWeCom, client: WeComClient) -> None:
    fake.on("media/upload", {"errcode": 42001, "errmsg": "expired"})
    await client.upload_media("file", "a.txt", b"hello world")
    assert [c.body for c in fake.calls("media/upload")] == [{"media": ("a.txt", b"hello world")}] * 2


async def test_concurrent_token_errors_fetch_one_new_token(fake: FakeWeCom, client: WeComClient) -> None:
    await client.get_follow_user_list()
    fake.on("externalcontact/get", *[{"errcode": 42001, "errmsg": "expired"}] * 10)
    await asyncio.gather(*(client.get_external_contact(f"wm{i}") for i in range(10)))
    assert len(fake.calls("gettoken")) == 2


@pytest.mark.parametrize(
    ("reply", "errcode", "retry_after"),
    [
        pytest.param({"errcode": -1, "errmsg": "system busy"}, -1, None, id="busy"),
        pytest.param({"errcode": 45009, "errmsg": "api freq out of limit"}, 45009, 60.0, id="freq"),
        pytest.param(
            {"errcode": 45033, "errmsg": "api concurrent out of limit"}, 45033, None, id="concurrency"
        ),
        pytest.param({"errcode": 41096, "errmsg": "being sent"}, 41096, None, id="welcome-in-flight"),
        pytest.param(502, -1, None, id="http-502"),
        pytest.param(503, -1, None, id="http-503"),
    ],
)
async def test_transient_failures(
    fake: FakeWeCom, client: WeComClient, reply: Any, errcode: int, retry_after: float | None
) -> None:
    fake.on("externalcontact/send_welcome_msg", reply)
    with pytest.raises(errors.Transient) as caught:
        await client.send_welcome_msg("WC", "hi")
    assert (caught.value.errcode, caught.value.retry_after) == (errcode, retry_after)
    assert caught.value.api == "externalcontact/send_welcome_msg"
    assert len(fake.calls("externalcontact/send_welcome_msg")) == 1


async def test_timeout_is_transient_and_hides_the_token(fake: FakeWeCom, make_client: MakeClient) -> None:
    client = make_client(timeout=0.05)
    fake.on("kf/sync_msg", HANG)
    before = metric("siyu_wecom_calls_total", api="kf/sync_msg", errcode="timeout")
    with pytest.raises(errors.Transient) as caught:
        await client.kf_sync_msg("wk1")
    assert caught.value.errcode == -1
    assert caught.value.errmsg == "timeout"
    assert "tok1" not in str(caught.value)
    assert metric("siyu_wecom_calls_total", api="kf/sync_msg", errcode="timeout") == before + 1


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, clock: FrozenClock, make_client: MakeClient
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(errors.Transient) as caught:
        await client.get_token("contact")
    assert caught.value.errmsg.startswith("connection")
    assert "contact-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "errcode"),
    [
        pytest.param({"errcode": 41050, "errmsg": "invalid welcome_code"}, 41050, id="expired-code"),
        pytest.param({"errcode": 41051, "errmsg": "already sent"}, 41051, id="already-sent"),
        pytest.param({"errcode": 40096, "errmsg": "invalid external_userid"}, 40096, id="bad-customer"),
        pytest.param(404, -1, id="http-404"),
    ],
)
async def test_permanent_failures(fake: FakeWeCom, client: WeComClient, reply: Any, errcode: int) -> None:
    fake.on("externalcontact/send_welcome_msg", reply)
    with pytest.raises(errors.Permanent) as caught:
        await client.send_welcome_msg("WC", "hi")
    assert caught.value.errcode == errcode
    assert len(fake.calls("externalcontact/send_welcome_msg")) == 1


async def test_bad_secret_is_permanent(fake: FakeWeCom, client: WeComClient) -> None:
    fake.on("gettoken", {"errcode": 40001, "errmsg": "invalid credential"})
    with pytest.raises(errors.Permanent) as caught:
        await client.get_follow_user_list()
    assert (caught.value.errcode, caught.value.api) == (40001, "gettoken")
    assert fake.calls("externalcontact/get_follow_user_list") == []


async def test_missing_secret_is_a_config_error(fake: FakeWeCom, make_client: MakeClient) -> None:
    client = make_client(secrets={"contact": "contact-secret"})
    with pytest.raises(errors.ConfigError):
        await client.kf_account_list()
    assert fake.seen == []


async def test_local_rate_limit_refuses_without_calling(
    fake: FakeWeCom, make_client: MakeClient, clock: FrozenClock
) -> None:
    client = make_client(rate_limits={"externalcontact/mark_tag": 2}, rate_limit_per_minute=1000)
    before = metric("siyu_wecom_calls_total", api="externalcontact/mark_tag", errcode="local_limit")
    await client.mark_tag("u1", "wm1", add_tag=["a"])
    clock.advance(20)
    await client.mark_tag("u1", "wm1", add_tag=["b"])
    with pytest.raises(errors.Transient) as caught:
        await client.mark_tag("u1", "wm1", add_tag=["c"])
    assert caught.value.errcode == 45009
    assert caught.value.retry_after == pytest.approx(40.0)
    assert len(fake.calls("externalcontact/mark_tag")) == 2
    assert (
        metric("siyu_wecom_calls_total", api="externalcontact/mark_tag", errcode="local_limit") == before + 1
    )
    # Other APIs have their own window, with the default limit.
    await client.get_follow_user_list()
    clock.advance(40)
    await client.mark_tag("u1", "wm1", add_tag=["c"])
    assert len(fake.calls("externalcontact/mark_tag")) == 3


async def test_metrics_count_calls_by_errcode(fake: FakeWeCom, client: WeComClient) -> None:
    api = "kf/service_state/get"
    ok_before = metric("siyu_wecom_calls_total", api=api, errcode="0")
    expired_before = metric("siyu_wecom_calls_total", api=api, errcode="42001")
    latency_before = metric("siyu_wecom_call_seconds_count", api=api)
    fake.on(api, {"errcode": 42001, "errmsg": "expired"}, {"errcode": 0, "errmsg": "ok", "service_state": 1})
    assert (await client.kf_service_state_get("wk1", "wm1"))["service_state"] == 1
    assert metric("siyu_wecom_calls_total", api=api, errcode="0") == ok_before + 1
    assert metric("siyu_wecom_calls_total", api=api, errcode="42001") == expired_before + 1
    assert metric("siyu_wecom_call_seconds_count", api=api) == latency_before + 2


async def test_from_settings_uses_configured_apps(
    fake: FakeWeCom, session: aiohttp.ClientSession, clock: FrozenClock, settings_factory: Any
) -> None:
    settings = settings_factory(**{"wecom.base_url": fake.url})
    kv = MemoryKV(clock)
    client = WeComClient.from_settings(settings, session, TokenCache(kv, clock, margin=300), kv, clock)
    await client.send_app_message(["u1"], "hi")
    token_request, send = fake.seen
    assert token_request.query == {
        "corpid": settings.wecom.corp_id,
        "corpsecret": settings.app("contact").secret.get_secret_value(),
    }
    assert send.body["agentid"] == settings.app("contact").agent_id
