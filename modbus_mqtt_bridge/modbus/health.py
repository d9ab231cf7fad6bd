"""Per-device health: a circuit breaker that backs a silent device off alone."""

from __future__ import annotations

from dataclasses import dataclass

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
