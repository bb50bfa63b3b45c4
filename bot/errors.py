"""Every error Siyu raises, one tree; a class's docstring is its default message.

SiyuError
├── ConfigError                 settings invalid (dotted paths in the message)
├── ContentError                ops YAML invalid: file, line, reason
├── SchemaBehind                database schema older than the code
├── LockTimeout                 a KV lock was not acquired in time (also a TimeoutError: retryable)
├── CallbackError               an inbound callback was refused
│   ├── BadSignature            -> HTTP 403
│   ├── MalformedCallback       -> HTTP 400
│   └── BodyTooLarge            -> HTTP 413
└── WeComError(errcode, errmsg) a WeCom API call failed
    ├── TokenExpired            40014 / 42001 (refresh the token and replay once)
    ├── Transient               -1, 45009, 45033, 6000, 41096, HTTP 5xx, timeouts: retry with backoff
    └── Permanent               anything else: record it, do not retry
"""

from __future__ import annotations

from collections.abc import Iterable


class SiyuError(Exception):
    """Siyu failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip().splitlines()[0])


class ConfigError(SiyuError):
    """The configuration is invalid."""


class ContentError(SiyuError):
    """An ops-edited YAML file is invalid."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file, self.line, self.reason = file, line, reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class ContentErrors(SiyuError):
    """The content library is invalid."""

    def __init__(self, problems: Iterable[ContentError]) -> None:
        self.errors = list(problems)
        super().__init__("\n".join(str(e) for e in self.errors) or None)


class SchemaBehind(SiyuError):
    """The database schema is older than this code; run `siyu db upgrade`."""


class LockTimeout(SiyuError, TimeoutError):
    """The lock was not acquired in time."""


class CallbackError(SiyuError):
    """The callback was refused."""

    status = 400


class BadSignature(CallbackError):
    """The callback signature does not match."""

    status = 403


class MalformedCallback(CallbackError):
    """The callback body is malformed."""

    status = 400


class BodyTooLarge(CallbackError):
    """The callback body is too large."""

    status = 413


class WeComError(SiyuError):
    """WeCom answered with an error."""

    def __init__(self, errcode: int, errmsg: str = "", *, api: str = "") -> None:
        self.errcode, self.errmsg, self.api = errcode, errmsg, api
        super().__init__(f"{api or 'WeCom'} errcode {errcode}: {errmsg or self.__doc__}")


class TokenExpired(WeComError):
    """The access_token is invalid or expired."""


class Transient(WeComError):
    """WeCom is busy or limiting us; retry later."""

    def __init__(
        self, errcode: int, errmsg: str = "", *, api: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(errcode, errmsg, api=api)
        self.retry_after = retry_after


class Permanent(WeComError):
    """WeCom refused the call; retrying will not help."""
