"""Per-device health: a circuit breaker that backs a silent device off alone."""

from __future__ import annotations

import time
from dataclasses import dataclass

LOG_EVERY_S = 60.0  # a repeating line problem is logged at most this often per kind


@dataclass
class DeviceHealth:
    """Per-device circuit breaker: offline after a failed exchange, retried after a backoff."""

    online: bool | None = None  # None: not known yet
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""
    last_error_ms: int | None = None  # every failed try, also while the link is down

    def failed(self, error: str) -> None:
        self.failures += 1
        self.last_error, self.last_error_ms = error, time.time_ns() // 1_000_000

    def may_try(self, now: float) -> bool:
        return self.failures == 0 or now >= self.retry_at
