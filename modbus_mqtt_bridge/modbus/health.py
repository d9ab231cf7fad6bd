"""Per-device health (a circuit breaker) and a throttle for repeating warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

LOG_EVERY_S = 60.0  # a repeating line problem is logged at most this often per kind


@dataclass
class DeviceHealth:
    """Per-device circuit breaker: offline after a failed exchange, retried after a backoff."""

    online: bool | None = None  # None: not known yet
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""

    def may_try(self, now: float) -> bool:
        return self.failures == 0 or now >= self.retry_at


@dataclass
class Throttle:
    """Rate limit for repeating warnings: the first at once, then one summary per period."""

    period_s: float = LOG_EVERY_S
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def allow(self, key: str, now: float) -> int | None:
        """None to stay quiet, else how many occurrences were held back since the last log."""
        if now - self._last.get(key, -self.period_s) < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
