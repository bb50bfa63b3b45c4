"""Siyu's own edges: the signed order webhook and the /r/<token> click redirect, both into the inbox."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from bot import events as ev
from bot.links import NOT_FOUND_PAGE, click_url, new_token
from bot.orders import SIGNATURE_HEADER, sign
from bot.store.models import ClickLink, InboxRow
from bot.wecom import callback

SECRET = "shop-webhook-secret"
CUSTOMER = "wmORDERcustomer00000000000000001"


def order_body(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "order_id": "SO20261122001",
        "external_userid": CUSTOMER,
        "amount_cents": 25900,
        "paid_at": "2026-11-22T10:30:00+08:00",
        "items": [{"sku": "milk-3", "name": "婴儿奶粉 3 段", "qty": 2}],
    }
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False).encode()


async def post_order(stack: Any, body: bytes, signature: str | None = "valid") -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if signature == "valid":
        headers[SIGNATURE_HEADER] = sign(SECRET, body)
    elif signature is not None:
        headers[SIGNATURE_HEADER] = signature
    url = stack.service.make_url("/api/events/order")
    async with stack.http.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def inbox_rows(stack: Any, app: str) -> list[InboxRow]:
    async with stack.runtime.sessions() as session:
        return list((await session.scalars(select(InboxRow).where(InboxRow.app == app))).all())


@pytest.fixture
async def shop_stack(stack_factory) -> Any:
    return await stack_factory(**{"sop.order_webhook_secret": SECRET})


async def test_signed_order_is_stored_once_and_parses_back(shop_stack) -> None:
    body = order_body()
    assert await post_order(shop_stack, body) == (200, {"ok": True, "duplicate": False})
    assert await post_order(shop_stack, body) == (200, {"ok": True, "duplicate": True})

    (row,) = await inbox_rows(shop_stack, "shop")
    assert (row.dedup_key, row.kind, row.partition_key) == (
        "order:SO20261122001",
        "OrderPaid",
        f"cust:{CUSTOMER}",
    )
    event = callback.parse(row.app, row.plaintext)
    assert event == ev.OrderPaid(
        app="shop",
        create_time=1795314600,
        route_key=ev.RouteKey("shop", "order_paid"),
        dedup_key="order:SO20261122001",
        partition=f"cust:{CUSTOMER}",
        order_id="SO20261122001",
        external_userid=CUSTOMER,
        amount_cents=25900,
        paid_at=1795314600.0,
        items=({"sku": "milk-3", "name": "婴儿奶粉 3 段", "qty": 2},),
    )
    await shop_stack.drain()  # the worker parses the stored body again (no handler yet: acknowledged)
    (row,) = await inbox_rows(shop_stack, "shop")
    assert row.status == "done"


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "md5=abc", sign("another-secret", order_body())],
)
async def test_bad_or_missing_signature_is_401_and_nothing_is_stored(shop_stack, signature) -> None:
    status, answer = await post_order(shop_stack, order_body(), signature=signature)
    assert status == 401
    assert answer["ok"] is False and "Signature" in answer["error"]
    assert await inbox_rows(shop_stack, "shop") == []


async def test_signature_of_another_body_is_refused(shop_stack) -> None:
    signed = sign(SECRET, order_body(amount_cents=1))
    status, _ = await post_order(shop_stack, order_body(amount_cents=100000), signature=signed)
    assert status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "JSON"),
        (b"[1, 2]", "JSON object"),
        (order_body(order_id=""), "order_id"),
        (order_body(order_id="x" * 65), "order_id"),
        (order_body(external_userid=None), "external_userid"),
        (order_body(amount_cents="259.00"), "amount_cents"),
        (order_body(amount_cents=-5), "amount_cents"),
        (order_body(amount_cents=True), "amount_cents"),
        (order_body(paid_at=None), "paid_at"),
        (order_body(paid_at="yesterday"), "paid_at"),
        (order_body(paid_at=-1), "paid_at"),
        (order_body(items="two tins"), "items"),
        ('{"order_id": "a"}'.encode("utf-16"), "UTF-8"),
    ],
)
async def test_bad_body_is_400_naming_the_field(shop_stack, body, field) -> None:
    status, answer = await post_order(shop_stack, body)
    assert status == 400
    assert field in answer["error"]
    assert await inbox_rows(shop_stack, "shop") == []


async def test_epoch_and_naive_iso_paid_at_and_numeric_order_id(shop_stack) -> None:
    assert (await post_order(shop_stack, order_body(order_id=42, paid_at=1795314600)))[0] == 200
    body = order_body(order_id="SO-2", paid_at="2026-11-22 10:30:00", amount_cents=None, items=None)
    assert (await post_order(shop_stack, body))[0] == 200
    events = {
        row.dedup_key: callback.parse(row.app, row.plaintext) for row in await inbox_rows(shop_stack, "shop")
    }
    first, second = events["order:42"], events["order:SO-2"]
    assert isinstance(first, ev.OrderPaid) and isinstance(second, ev.OrderPaid)
    assert first.paid_at == second.paid_at == 1795314600.0  # naive ISO = Asia/Shanghai
    assert (second.amount_cents, second.items) == (0, ())


async def test_oversized_order_is_413(shop_stack) -> None:
    limit = shop_stack.settings.service.max_body_bytes
    body = order_body(items=[{"note": "x" * limit}])
    status, answer = await post_order(shop_stack, body)
    assert status == 413 and answer["ok"] is False
    assert await inbox_rows(shop_stack, "shop") == []


async def test_webhook_without_secret_is_404(stack) -> None:
    status, answer = await post_order(stack, order_body())
    assert status == 404 and answer["ok"] is False


# --- /r/<token> ----------------------------------------------------------------------------------


async def add_link(stack: Any, url: str, token: str | None = None) -> str:
    token = token or new_token()
    async with stack.runtime.sessions.begin() as session:
        session.add(
            ClickLink(
                token=token,
                enrollment_id=7,
                external_userid=CUSTOMER,
                step_id="day3_recall",
                url=url,
                created_at=stack.clock.timestamp(),
            )
        )
    return token


async def open_link(stack: Any, token: str, method: str = "GET") -> tuple[int, str, str]:
    url = stack.service.make_url(f"/r/{token}")
    async with stack.http.request(method, url, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


def test_token_and_click_url_shapes() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == 32 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)
    assert click_url("https://siyu.example.com/", "abc") == "https://siyu.example.com/r/abc"
    assert click_url("https://siyu.example.com", "abc") == "https://siyu.example.com/r/abc"


async def test_click_redirects_and_stores_one_event_per_minute(stack) -> None:
    target = "https://shop.example.com/activity/winter?from=sop"
    token = await add_link(stack, target)

    status, location, _ = await open_link(stack, token)
    assert (status, location) == (302, target)
    stack.clock.advance(20)
    assert (await open_link(stack, token))[:2] == (302, target)  # reload: same minute, one click
    stack.clock.advance(60)
    assert (await open_link(stack, token))[:2] == (302, target)

    rows = await inbox_rows(stack, "link")
    assert len(rows) == 2
    first = callback.parse(rows[0].app, rows[0].plaintext)
    assert isinstance(first, ev.LinkClicked)
    assert (first.token, first.enrollment_id, first.external_userid, first.step_id) == (
        token,
        7,
        CUSTOMER,
        "day3_recall",
    )
    assert first.partition == f"cust:{CUSTOMER}" and rows[0].partition_key == first.partition
    assert first.clicked_at == rows[0].received_at
    async with stack.runtime.sessions() as session:
        link = await session.get(ClickLink, token)
    assert (link.clicks, link.first_clicked_at) == (0, None)  # the redirect updates nothing itself


async def test_head_redirects_without_counting(stack) -> None:
    token = await add_link(stack, "https://shop.example.com/")
    assert (await open_link(stack, token, "HEAD"))[:2] == (302, "https://shop.example.com/")
    assert await inbox_rows(stack, "link") == []


@pytest.mark.parametrize("token", ["nosuchtoken", "bad.token", "x" * 40])
async def test_unknown_token_is_404_page(stack, token) -> None:
    status, location, text = await open_link(stack, token)
    assert (status, location) == (404, "")
    assert text == NOT_FOUND_PAGE and "链接不存在或已失效" in text
    assert await inbox_rows(stack, "link") == []


async def test_stored_non_http_url_is_never_followed(stack) -> None:
    token = await add_link(stack, "javascript:alert(1)")
    assert (await open_link(stack, token))[0] == 404


async def test_chinese_url_is_percent_encoded_in_location(stack) -> None:
    token = await add_link(stack, "https://shop.example.com/活动?q=奶粉")
    status, location, _ = await open_link(stack, token)
    assert (status, location) == (302, "https://shop.example.com/%E6%B4%BB%E5%8A%A8?q=%E5%A5%B6%E7%B2%89")
