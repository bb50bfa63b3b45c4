"""Per-API frequency limits on the injected clock (p/90454) and the concurrency cap (45033)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Window:
    start: float = 0.0
    count: int = 0


@dataclass
class RateLimiter:
    """Per-corp per-API counters: 10,000/min (blocked 60 s) and 150,000/h (blocked 60 min)."""

    per_minute: int = 10_000
    per_hour: int = 150_000
    minute_block_seconds: float = 60.0
    hour_block_seconds: float = 3600.0
    overrides: dict[str, int] = field(default_factory=dict)  # path -> per-minute limit
    _minute: dict[str, _Window] = field(default_factory=dict)
    _hour: dict[str, _Window] = field(default_factory=dict)
    _blocked_until: dict[str, float] = field(default_factory=dict)

    def hit(self, key: str, now: float) -> bool:
        """Count one call; False when the call must be refused with 45009."""
        if now < self._blocked_until.get(key, 0.0):
            return False
        for windows, span, limit, block in (
            (self._minute, 60.0, self.overrides.get(key, self.per_minute), self.minute_block_seconds),
            (self._hour, 3600.0, self.per_hour, self.hour_block_seconds),
        ):
            window = windows.setdefault(key, _Window(start=now))
            if now - window.start >= span:
                window.start, window.count = now, 0
            window.count += 1
            if window.count > limit:
                self._blocked_until[key] = now + block
                return False
        return True

    def reset(self) -> None:
        """Forget all counters and blocks."""
        self._minute.clear()
        self._hour.clear()
        self._blocked_until.clear()
