"""Time as a parameter: `Clock` protocol, `SystemClock` for serving, `FrozenClock` for tests.

Nothing in `bot/` or `handlers/` reads the wall clock directly; everything that needs "now" is
given a Clock, so tests advance time instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    """Source of wall time (aware, Asia/Shanghai) and monotonic time."""

    def now(self) -> dt.datetime: ...

    def timestamp(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        """Current time, aware, in Asia/Shanghai."""
        return dt.datetime.fromtimestamp(self.timestamp(), SHANGHAI)

    def timestamp(self) -> float:
        """Seconds since the epoch."""
        return time.time()  # noqa: TID251 - the one sanctioned wall-clock read

    def monotonic(self) -> float:
        """Monotonic seconds, for durations."""
        return time.monotonic()


class FrozenClock:
    """A clock that only moves when told to (tests, `siyu demo`, `sop simulate`)."""

    def __init__(self, start: dt.datetime | float | None = None) -> None:
        if start is None:
            start = dt.datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
        self._ts = start.timestamp() if isinstance(start, dt.datetime) else float(start)
        self._mono = 1000.0

    def now(self) -> dt.datetime:
        """Current frozen time, aware, in Asia/Shanghai."""
        return dt.datetime.fromtimestamp(self._ts, SHANGHAI)

    def timestamp(self) -> float:
        """Frozen seconds since the epoch."""
        return self._ts

    def monotonic(self) -> float:
        """Frozen monotonic seconds."""
        return self._mono

    def advance(self, delta: dt.timedelta | float = 0.0, **kwargs: float) -> None:
        """Move time forward by `delta` (seconds or timedelta) or timedelta keyword arguments."""
        seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else float(delta)
        seconds += dt.timedelta(**kwargs).total_seconds()
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._ts += seconds
        self._mono += seconds

    def set(self, when: dt.datetime) -> None:
        """Jump to `when` (not before the current time)."""
        self.advance(when.timestamp() - self._ts)
