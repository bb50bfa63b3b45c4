"""Shared fixtures: clock, settings, and the real-server URLs (skip locally, fail under CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_url(var: str, what: str) -> str:
    """The URL in `var`, or skip (locally) / fail (CI) when it is not set."""
    url = os.environ.get(var)
    if not url:
        message = f"{what} tests need {var}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: real-server tests never skip)")
        pytest.skip(message)
    return url


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when the test advances it."""
    return FrozenClock()


@pytest.fixture
def settings_factory(tmp_path):
    """Build Settings from the committed config.yaml with dotted overrides and a temp SQLite file."""

    def make(**overrides) -> Settings:
        base = load_settings(ROOT / "config.yaml", environ={})
        defaults = {"database.url": f"sqlite+aiosqlite:///{tmp_path / 'siyu.db'}"}
        defaults.update(overrides)
        return base.with_overrides(**defaults)

    return make


@pytest.fixture
def settings(settings_factory) -> Settings:
    """Default test settings (embedded SQLite in a temp dir, no Redis)."""
    return settings_factory()


@pytest.fixture
def redis_url() -> str:
    """SIYU_TEST_REDIS_URL, or skip locally / fail under CI."""
    return server_url("SIYU_TEST_REDIS_URL", "Redis")


@pytest.fixture
def postgres_url() -> str:
    """SIYU_TEST_DATABASE_URL, or skip locally / fail under CI."""
    return server_url("SIYU_TEST_DATABASE_URL", "PostgreSQL")
