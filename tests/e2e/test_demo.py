"""`siyu demo` plays its story and every check holds; `serve` mode's own loops process callbacks."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.appkeys import RUNTIME
from bot.cli import main
from bot.clock import SystemClock
from bot.demo import run_demo
from bot.store.models import TimelineEntry
from bot.wecom.emulator import EMULATOR_STATE, create_emulator


async def test_demo_story_passes_and_prints_a_timeline(settings) -> None:
    lines: list[str] = []
    assert await run_demo(settings, out=lines.append) == 0
    text = "\n".join(lines)
    assert "✗" not in text
    assert "Timeline of 王女士" in text
    assert "/cgi-bin/kf/sync_msg                       errcode=-1" in text


async def test_serve_mode_loops_process_a_callback_without_being_driven(settings_factory) -> None:
    """With background workers on (as `siyu serve` runs), a kf message is pulled by itself."""
    clock = SystemClock()
    emulator = TestServer(create_emulator(settings_factory(), clock=clock))
    await emulator.start_server()
    settings = settings_factory(**{"wecom.base_url": str(emulator.make_url("")).rstrip("/")})
    service = TestServer(create_app(settings, clock=clock, run_workers=True))
    await service.start_server()
    emu = emulator.app[EMULATOR_STATE]
    emu.callback_base_url = str(service.make_url("")).rstrip("/")
    runtime = service.app[RUNTIME]

    async def on_timeline() -> bool:
        async with runtime.sessions() as session:
            return bool(
                await session.scalar(select(TimelineEntry.id).where(TimelineEntry.kind == "kf_message"))
            )

    try:
        await emu.simulate_kf_message("在吗")
        await runtime.wait_until(on_timeline, seconds=10)
    finally:
        await service.close()
        await emulator.close()
    assert len(emu.calls("/kf/sync_msg")) >= 1


def test_cli_routes_and_config_show_mask_secrets(capsys) -> None:
    assert main(["routes"]) == 0
    assert "timeline" in capsys.readouterr().out
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "demo-contact-secret" not in shown and "**********" in shown


def test_cli_reports_config_errors_cleanly(tmp_path, capsys) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("wecom:\n  corp_id: [unclosed\n")
    assert main(["--config", str(bad), "config", "show"]) == 2
    assert "config.yaml:" in capsys.readouterr().err
