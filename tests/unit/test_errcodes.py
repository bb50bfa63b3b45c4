"""The errcode table: each code maps to what the caller can do."""

from __future__ import annotations

import pytest

from bot import errors, retry
from bot.wecom import errcodes


@pytest.mark.parametrize(
    ("errcode", "kind", "retry_after"),
    [
        (40014, errors.TokenExpired, None),
        (42001, errors.TokenExpired, None),
        (-1, errors.Transient, None),
        (45009, errors.Transient, 60.0),
        (45033, errors.Transient, None),
        (6000, errors.Transient, None),
        (41096, errors.Transient, None),
        (40001, errors.Permanent, None),
        (40013, errors.Permanent, None),
        (40091, errors.Permanent, None),
        (41001, errors.Permanent, None),
        (41050, errors.Permanent, None),
        (41051, errors.Permanent, None),
        (40068, errors.Permanent, None),
        (84061, errors.Permanent, None),
        (95002, errors.Permanent, None),
        (48002, errors.Permanent, None),
        (123456, errors.Permanent, None),
    ],
)
def test_raise_for_maps_errcode(
    errcode: int, kind: type[errors.WeComError], retry_after: float | None
) -> None:
    with pytest.raises(errors.WeComError) as caught:
        errcodes.raise_for(errcode, "msg", "externalcontact/get")
    exc = caught.value
    assert type(exc) is kind
    assert (exc.errcode, exc.errmsg, exc.api) == (errcode, "msg", "externalcontact/get")
    assert getattr(exc, "retry_after", None) == retry_after
    # The outbox retries exactly the token and transient classes.
    assert retry.is_retryable(exc) is (kind is not errors.Permanent)


def test_zero_is_success() -> None:
    assert errcodes.raise_for(0, "ok", "gettoken") is None
    assert errcodes.exception_for(0) is None


def test_message_names_api_and_code_but_not_more() -> None:
    exc = errcodes.exception_for(41050, "invalid welcome_code", "externalcontact/send_welcome_msg")
    assert str(exc) == "externalcontact/send_welcome_msg errcode 41050: invalid welcome_code"
