"""Operations: health, readiness, metrics, the inbox/outbox CLI, graceful shutdown, robot callbacks."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot import actions as act
from bot import events
from bot.cli import main
from bot.router import Router
from bot.runtime import default_routers
from bot.store.models import InboxRow


async def test_health_readiness_and_metrics(stack) -> None:
    await stack.emu.simulate_add_contact(userid="xiaolin")
    params, body = stack.emu.build_callback("contact", stack.emu.callbacks[-1]["plaintext"])
    await stack.post("contact", params, body)  # a duplicate
    await stack.drain()
    async with stack.http.get(stack.service.make_url("/healthz")) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    async with stack.http.get(stack.service.make_url("/readyz")) as resp:
        assert resp.status == 200 and (await resp.json())["checks"] == {"database": "ok"}
    async with stack.http.get(stack.service.make_url("/metrics")) as resp:
        text = await resp.text()
    assert 'siyu_callbacks_total{app="contact",outcome="duplicate"}' in text
    assert 'siyu_outbox_total{kind="refresh_customer",outcome="sent"}' in text
    assert 'siyu_wecom_calls_total{api="externalcontact/get",errcode="0"}' in text
    assert "siyu_callback_ack_seconds_bucket" in text


async def test_readiness_reports_an_unreachable_redis(stack_factory) -> None:
    stack = await stack_factory(**{"redis.url": "redis://127.0.0.1:1/0"})
    async with stack.http.get(stack.service.make_url("/readyz")) as resp:
        body = await resp.json()
    assert resp.status == 503
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"].startswith("error")


async def test_robot_callback_is_stored_and_acknowledged(stack) -> None:
    sent = await stack.emu.simulate_robot_message("xiaolin", "@小禾助手 今天有什么活动", chattype="group")
    assert sent["delivery"]["attempts"] == [200]
    await stack.drain()
    async with stack.runtime.sessions() as session:
        row = await session.scalar(select(InboxRow))
    assert (row.app, row.kind, row.status) == ("robot", "RobotMessage", "done")


def _failing_router() -> Router:
    router = Router("always_fails")

    @router.on(events.ContactAdded)
    def fail(event, deps) -> list[act.Action]:
        raise RuntimeError("broken rule")

    return router


async def test_cli_lists_dead_letters_and_failed_sends_and_replays(stack_factory, capsys, tmp_path) -> None:
    stack = await stack_factory(routers=(_failing_router(), *default_routers()), **{"inbox.max_attempts": 1})
    stack.emu.add_fault("/cgi-bin/externalcontact/get", errcode=40003)  # a permanent errcode
    await stack.emu.simulate_add_contact(userid="xiaolin")
    await stack.drain()
    config = tmp_path / "cli.yaml"
    config.write_text(_yaml_of(stack.settings))  # the CLI reads the service's settings

    async def siyu(*args: str) -> tuple[int, str]:
        # The CLI runs its own event loop, as it does from a shell.
        code = await asyncio.to_thread(main, ["--config", str(config), *args])
        return code, capsys.readouterr().out

    code, out = await siyu("inbox", "failed")
    assert code == 0 and "always_fails: RuntimeError: broken rule" in out
    inbox_id = int(out.split("#", 1)[1].split()[0])
    code, out = await siyu("outbox", "failed")
    assert code == 0 and "refresh_customer  errcode=40003" in out
    outbox_id = int(out.split("#", 1)[1].split()[0])
    assert (await siyu("outbox", "retry", str(outbox_id)))[0] == 0
    assert (await siyu("inbox", "replay", str(inbox_id)))[0] == 0
    assert (await siyu("inbox", "replay", "999"))[0] == 1
    stack.clock.advance(days=2)  # the CLI stamps rows with the wall clock; the test clock is behind it
    await stack.drain()
    assert [c["errcode"] for c in stack.calls("/externalcontact/get")] == [40003, 0]
    async with stack.runtime.sessions() as session:
        row = await session.get(InboxRow, inbox_id)
    assert (row.status, row.attempts) == ("failed", 1)  # the rule is still broken: dead again


def _yaml_of(settings) -> str:
    import yaml

    from bot.config import _unwrap_secrets

    data = settings.model_dump(mode="python")
    _unwrap_secrets(data)
    return yaml.safe_dump(data, allow_unicode=True)
