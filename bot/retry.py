"""Pure retry decisions: exponential backoff with full jitter, capped, bounded by attempts and deadline."""

from __future__ import annotations

import random
from collections.abc import Callable

from bot import errors


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `attempt` (1-based): full jitter over base * 2**(attempt-1)."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    # Full jitter keeps replicas that failed together from retrying together; never below a tenth.
    return max(ceiling * 0.1, ceiling * rand())


def is_retryable(exc: BaseException) -> bool:
    """True for failures worth retrying: transient WeCom errors, timeouts, lost connections."""
    if isinstance(exc, errors.WeComError):
        return isinstance(exc, (errors.Transient, errors.TokenExpired))
    return isinstance(exc, (TimeoutError, ConnectionError, OSError))


def next_attempt_at(
    exc: BaseException,
    attempt: int,
    *,
    now: float,
    max_attempts: int,
    base: float,
    cap: float,
    deadline: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """When to try again after failed attempt number `attempt`, or None to give up."""
    if not is_retryable(exc) or attempt >= max_attempts:
        return None
    delay = backoff_delay(attempt, base, cap, rand)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after and (deadline is None or now + retry_after < deadline):
        delay = max(delay, float(retry_after))
    # With a deadline (a WelcomeCode lives 20 s) an early try beats honouring a 60 s block hint:
    # the block may be shorter than WeCom's worst case, and after the deadline nothing can be sent.
    run_at = now + delay
    if deadline is not None and run_at >= deadline:
        return None
    return run_at
