"""The single errcode -> exception table for WeCom API answers (docs/wecom-api.md §1, §13).

What the caller can do decides the class: refresh the token and replay once (`TokenExpired`), retry
later with backoff (`Transient`, sometimes with a known `retry_after`), or give up (`Permanent`).
Source: https://developer.work.weixin.qq.com/document/path/90313
"""

from __future__ import annotations

from bot import errors

OK = 0

# The token was revoked or expired: fetch a new one and replay the request once.
TOKEN_EXPIRED: frozenset[int] = frozenset({40014, 42001})

# Worth retrying later, with the seconds to wait when WeCom states them (None: use backoff).
TRANSIENT: dict[int, float | None] = {
    -1: None,  # system busy; the doc advises up to 3 retries
    45009: 60.0,  # frequency limit: a minute-limit block lasts 60 s (p/90454)
    45033: None,  # concurrency limit
    6000: None,  # data version conflict from concurrent edits
    41096: None,  # welcome message being sent by another app; may retry within the 20 s window
    41063: None,  # mass-send task still being dispatched right after creation; query again shortly
}
# Not transient on purpose: 41094 (≥3 reminders of a task in 24 h) frees up only within the day,
# so a backoff retry would fail again; 41093 (task cancelled) and 41046-41048 never change.


def exception_for(errcode: int, errmsg: str = "", api: str = "") -> errors.WeComError | None:
    """The exception for `errcode`, or None when it means success."""
    if errcode == OK:
        return None
    if errcode in TOKEN_EXPIRED:
        return errors.TokenExpired(errcode, errmsg, api=api)
    if errcode in TRANSIENT:
        return errors.Transient(errcode, errmsg, api=api, retry_after=TRANSIENT[errcode])
    return errors.Permanent(errcode, errmsg, api=api)


def raise_for(errcode: int, errmsg: str, api: str) -> None:
    """Raise the mapped WeComError for a non-zero `errcode`; return on success."""
    exc = exception_for(errcode, errmsg, api)
    if exc is not None:
        raise exc
