"""Settings: the committed file loads, env overrides nest, secrets come from a file and stay masked."""

from __future__ import annotations

import logging

import pytest
from tests_support import ROOT

from bot import errors
from bot.config import env_overrides, load_settings, masked_dump, secret_values
from bot.logs import JsonFormatter, SecretFilter


def test_committed_config_loads_and_matches_the_emulator_demo_corp() -> None:
    settings = load_settings(ROOT / "config.yaml", environ={})
    assert settings.wecom.corp_id.startswith("ww")
    assert settings.database.url.startswith("sqlite+aiosqlite://")
    assert settings.redis.url is None
    for app in ("contact", "kf", "robot"):
        assert len(settings.app(app).encoding_aes_key.get_secret_value()) == 43


def test_environment_overrides_nest_and_ignore_unrelated_variables() -> None:
    environ = {
        "SIYU_WECOM__BASE_URL": "https://qyapi.weixin.qq.com",
        "SIYU_SERVICE__PORT": "9000",
        "SIYU_WECOM__APPS__KF__SECRET": "real-kf-secret",
        "SIYU_TEST_DATABASE_URL": "postgresql+asyncpg://x/y",  # a test variable, not a setting
        "HOME": "/root",
    }
    settings = load_settings(ROOT / "config.yaml", environ=environ)
    assert settings.wecom.base_url == "https://qyapi.weixin.qq.com"
    assert settings.service.port == 9000
    assert settings.app("kf").secret.get_secret_value() == "real-kf-secret"
    assert "test_database_url" not in env_overrides(environ)


def test_secrets_file_overrides_the_demo_values(tmp_path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("wecom:\n  apps:\n    contact:\n      secret: from-the-secrets-file\n")
    settings = load_settings(ROOT / "config.yaml", environ={"SIYU_SECRETS_FILE": str(secrets)})
    assert settings.app("contact").secret.get_secret_value() == "from-the-secrets-file"
    with pytest.raises(errors.ConfigError, match="does not exist"):
        load_settings(ROOT / "config.yaml", environ={"SIYU_SECRETS_FILE": str(tmp_path / "missing.yaml")})


def test_invalid_settings_list_every_dotted_path(tmp_path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "wecom:\n  corp_id: ww1\n  apps:\n    contact: {callback_token: t, encoding_aes_key: short}\n"
        "service:\n  port: not-a-port\n  colour: blue\n"
    )
    with pytest.raises(errors.ConfigError) as info:
        load_settings(bad, environ={})
    message = str(info.value)
    for path in ("wecom.apps.contact.encoding_aes_key", "wecom.apps.kf", "service.port", "service.colour"):
        assert path in message


def test_masked_dump_and_secret_filter_hide_every_secret() -> None:
    settings = load_settings(
        ROOT / "config.yaml",
        environ={"SIYU_DATABASE__URL": "postgresql+asyncpg://siyu:pg-password@db/siyu"},
    )
    shown = str(masked_dump(settings))
    secrets = secret_values(settings)
    assert len(secrets) >= 8
    assert not [s for s in secrets if s in shown]
    assert "pg-password" not in shown

    record = logging.LogRecord(
        "bot", logging.INFO, __file__, 1, "calling %s", ("x?access_token=abc123&y=1",), None
    )
    record.detail = f"secret is {secrets[0]}"
    SecretFilter(secrets).filter(record)
    line = JsonFormatter().format(record)
    assert "abc123" not in line and secrets[0] not in line
    assert "access_token=***" in line
