"""Typed settings: `config.yaml`, then a secrets file, then `SIYU_*` environment overrides.

`SIYU_WECOM__BASE_URL=http://x` sets `wecom.base_url` (`__` nests). Only variables whose first
segment names a settings section are read, so `SIYU_TEST_DATABASE_URL` and friends are ignored.
Secrets are `SecretStr`: they print as `**********` and are never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot import errors
from bot.policy import PolicySettings

APP_NAMES = ("contact", "kf", "robot")
AppName = Literal["contact", "kf", "robot"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceSettings(_Section):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(64 * 1024, gt=0)
    shutdown_timeout_seconds: float = Field(10.0, gt=0)


class DatabaseSettings(_Section):
    """SQL storage."""

    url: str = "sqlite+aiosqlite:///.siyu/siyu.db"
    echo: bool = False
    pool_size: int = Field(10, gt=0)


class RedisSettings(_Section):
    """Optional Redis for cache, locks and rate limits shared by replicas."""

    url: str | None = None
    key_prefix: str = "siyu:"


class AppCredentials(_Section):
    """One WeCom app's credentials and callback secrets."""

    agent_id: int | None = None
    secret: SecretStr | None = None
    callback_token: SecretStr
    encoding_aes_key: SecretStr

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key_length(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        return value


class AppsSettings(_Section):
    """The apps of the corp: customer contact, 微信客服 (kf), smart robot."""

    contact: AppCredentials
    kf: AppCredentials
    robot: AppCredentials


class RetrySettings(_Section):
    """Backoff for retried work: base * 2**attempt with full jitter, capped."""

    max_attempts: int = Field(8, ge=1)
    base_seconds: float = Field(0.5, gt=0)
    max_seconds: float = Field(300.0, gt=0)


class WeComSettings(_Section):
    """The WeCom API and the corp."""

    base_url: str = "https://qyapi.weixin.qq.com"
    corp_id: str
    timeout_seconds: float = Field(5.0, gt=0)
    token_refresh_margin_seconds: float = Field(300.0, ge=0)
    rate_limit_per_minute: int = Field(6000, gt=0)
    rate_limits: dict[str, int] = Field(default_factory=dict)
    apps: AppsSettings


class InboxSettings(_Section):
    """Durable inbox of callbacks."""

    max_attempts: int = Field(5, ge=1)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    batch_size: int = Field(50, gt=0)
    workers: int = Field(2, ge=1, le=16)
    poll_interval_seconds: float = Field(1.0, gt=0)
    retention_days: float = Field(7.0, gt=0)


class OutboxSettings(_Section):
    """Durable outbox of WeCom calls."""

    retry: RetrySettings = RetrySettings()
    lease_seconds: float = Field(30.0, gt=0)
    batch_size: int = Field(100, gt=0)
    # A batch is recorded once all its calls are done, so enough calls must be in flight to clear
    # 100 sends in well under a second at WeCom's latency (45033 was seen only above ~400).
    concurrency: int = Field(32, gt=0)
    poll_interval_seconds: float = Field(0.5, gt=0)


class SchedulerSettings(_Section):
    """Durable timers."""

    poll_interval_seconds: float = Field(1.0, gt=0)
    batch_size: int = Field(100, gt=0)
    lease_seconds: float = Field(60.0, gt=0)


class ContentSettings(_Section):
    """The ops-edited content library."""

    dir: str = "content_library"
    source: Literal["files", "database"] = "files"
    reload_interval_seconds: float = Field(5.0, gt=0)


class FaqBands(_Section):
    """Score thresholds (0-1) of the matcher's bands: answer >= answer, suggest >= suggest, else silent."""

    answer: float = Field(0.72, ge=0, le=1)
    suggest: float = Field(0.45, ge=0, le=1)


class FaqSettings(_Section):
    """The FAQ bot in 微信客服 and suggestions for guides."""

    bands: FaqBands = FaqBands()
    menu_size: int = Field(3, ge=2, le=10)
    max_query_chars: int = Field(300, gt=0)
    misses_before_handoff: int = Field(2, ge=1)
    handoff_to: Literal["queue", "servicer"] = "queue"
    servicer_userid: str = ""
    notify_guides: bool = False


class ApiSettings(_Section):
    """The JSON API (the sidebar and the ops console use it)."""

    token: SecretStr | None = None


class SopSettings(_Section):
    """Lifecycle stages and SOP playbooks (`sop/`), and the manners every proactive send keeps."""

    dir: str = "sop"
    batch_size: int = Field(1000, gt=0)
    # Runner loops per process: on PostgreSQL one batch's round trips and commit overlap the others'
    # decisions (claims never give two loops runs of one customer); on SQLite one loop runs.
    workers: int = Field(3, ge=1, le=8)
    poll_interval_seconds: float = Field(5.0, gt=0)
    # Mass-send tasks wait for the guide: check after this long, remind while unsent (WeCom allows
    # 3 reminders per task per 24 h), and record the task as unsent after the last check.
    check_after_hours: float = Field(4.0, gt=0)
    max_reminders: int = Field(2, ge=0, le=3)
    # Purchases arrive at POST /api/events/order signed with HMAC-SHA256 of the body in
    # X-Siyu-Signature; null disables the webhook.
    order_webhook_secret: SecretStr | None = None
    policy: PolicySettings = PolicySettings()


class WelcomeSettings(_Section):
    """Welcome messages for new contacts."""

    window_seconds: float = Field(20.0, gt=0)
    media_cache_seconds: float = Field(3 * 86400 - 3600, gt=0)


class TaggingSettings(_Section):
    """Tags and attributes from what customers say."""

    sync_delay_seconds: float = Field(30.0, ge=0)


class ChannelsSettings(_Section):
    """Channel live codes (渠道活码)."""

    daily_sync_at: str = "00:05"


class ArchiveSettings(_Section):
    """会话内容存档 (chat archive): what customers write to guides in 1:1 chats and customer groups.

    `adapter: sdk` loads WeCom's Finance SDK (libWeWorkFinanceSdk_C.so) through ctypes; `emulator`
    reads the emulator's archive feed over HTTP (tests and the demo). Nothing is loaded when disabled.
    """

    enabled: bool = False
    adapter: Literal["emulator", "sdk"] = "emulator"
    sdk_library: str = ""
    """Path of libWeWorkFinanceSdk_C.so (adapter sdk)."""
    secret: SecretStr | None = None
    """The archive app's Secret (Init(sdk, corpid, secret))."""
    private_key: SecretStr | None = None
    """PEM of the RSA private key whose public key is set in the console (or `private_key_file`)."""
    private_key_file: str | None = None
    batch_limit: int = Field(1000, gt=0, le=1000)
    timeout_seconds: int = Field(5, gt=0)
    proxy: str = ""
    proxy_password: SecretStr | None = None
    poll_interval_seconds: int = Field(300, gt=0)
    """A safety-net pull this often: a lost msgaudit_notify, or two in one second, pull once or never."""


class LoggingSettings(_Section):
    """Logs."""

    level: str = "INFO"
    format: Literal["json", "text"] = "json"


class EmulatorSettings(_Section):
    """`siyu emulator`: the fake WeCom used by tests and the demo."""

    host: str = "127.0.0.1"
    port: int = 8081
    callback_base_url: str = "http://127.0.0.1:8080"
    token_ttl_seconds: int = Field(7200, gt=0)
    welcome_code_ttl_seconds: int = Field(20, gt=0)
    callback_timeout_seconds: float = Field(5.0, gt=0)
    callback_retries: int = Field(3, ge=0)


class Settings(_Section):
    """All of Siyu's settings."""

    service: ServiceSettings = ServiceSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    wecom: WeComSettings
    inbox: InboxSettings = InboxSettings()
    outbox: OutboxSettings = OutboxSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    content: ContentSettings = ContentSettings()
    faq: FaqSettings = FaqSettings()
    welcome: WelcomeSettings = WelcomeSettings()
    tagging: TaggingSettings = TaggingSettings()
    channels: ChannelsSettings = ChannelsSettings()
    archive: ArchiveSettings = ArchiveSettings()
    sop: SopSettings = SopSettings()
    api: ApiSettings = ApiSettings()
    logging: LoggingSettings = LoggingSettings()
    emulator: EmulatorSettings = EmulatorSettings()
    secrets_file: str | None = None

    def app(self, name: str) -> AppCredentials:
        """Credentials of app `name` (contact, kf, robot)."""
        return getattr(self.wecom.apps, name)

    def with_overrides(self, **dotted: Any) -> Settings:
        """A copy with dotted-path overrides, e.g. `with_overrides(**{"database.url": u})`."""
        data = self.model_dump(mode="python")
        _unwrap_secrets(data)
        for path, value in dotted.items():
            _set_path(data, path.split("."), value)
        return _validate(data)


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read `path` (default `SIYU_CONFIG` or ./config.yaml), the secrets file and the environment."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("SIYU_CONFIG") or "config.yaml")
    data = _read_yaml(path) if path.exists() else {}
    secrets_path = environ.get("SIYU_SECRETS_FILE") or data.get("secrets_file")
    if secrets_path:
        secrets_file = Path(secrets_path)
        if not secrets_file.is_absolute():
            secrets_file = path.parent / secrets_file
        if not secrets_file.exists():
            raise errors.ConfigError(f"secrets file {secrets_file} does not exist")
        _deep_merge(data, _read_yaml(secrets_file))
    _deep_merge(data, env_overrides(environ))
    if path.exists():
        # Relative paths in the settings are relative to the settings file, not to the caller's cwd.
        for section, default in (("content", ContentSettings().dir), ("sop", SopSettings().dir)):
            values = data.setdefault(section, {}) or {}
            directory = Path(str(values.get("dir", default)))
            if not directory.is_absolute():
                values["dir"] = str((path.parent / directory).resolve())
            data[section] = values
    return _validate(data)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`SIYU_A__B=v` variables as a nested dict, for known sections only."""
    sections = set(Settings.model_fields)
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("SIYU_"):
            continue
        parts = [p.lower() for p in name[5:].split("__")]
        if parts[0] not in sections:
            continue
        _set_path(out, parts, _scalar(raw))
    return out


def _scalar(raw: str) -> Any:
    """Environment strings typed like YAML scalars ("8080" -> 8080, "true" -> True)."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (str, int, float, bool)) or value is None else raw


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise errors.ConfigError(f"{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise errors.ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _validate(data: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        ]
        raise errors.ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from exc


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[parts[-1]] = value


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _unwrap_secrets(data: Any) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, SecretStr):
                data[key] = value.get_secret_value()
            else:
                _unwrap_secrets(value)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with every secret masked (for `siyu config show`)."""
    data = settings.model_dump(mode="json")
    for section in ("database", "redis"):
        if data[section].get("url"):
            data[section]["url"] = mask_url(data[section]["url"])
    return data


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy knows (e.g. redis://): mask by hand
        head, sep, tail = url.partition("@")
        if not sep or ":" not in head.split("//", 1)[-1]:
            return url
        scheme, _, creds = head.partition("//")
        return f"{scheme}//{creds.split(':', 1)[0]}:***@{tail}"
    return parsed.render_as_string(hide_password=True)


def secret_values(settings: Settings) -> list[str]:
    """Every secret string in `settings`, for the log-masking filter."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, SecretStr):
            value = obj.get_secret_value()
            if value:
                found.append(value)
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name))
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value)

    walk(settings)
    return found
