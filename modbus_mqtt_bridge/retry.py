"""Retry timing, pure: the one backoff (capped, jittered), the side-car's pause cadence and
the one log throttle.

Randomness and time come in as arguments (`rand` in [0, 1), `now` in seconds), so every
delay is a plain function of its inputs and tests need no clock; `jitter()` is the
callers' source of `rand`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def jitter() -> float:
    """A number in [0, 1) to spread retries; timing, not secrecy."""
    return random.random()  # noqa: S311


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff, capped; attempt 0 is the first retry."""

    base_s: float
    cap_s: float
    factor: float = 2.0

    def delay(self, attempt: int, rand: float) -> float:
        """'Equal jitter': half the step is fixed, half random. Never zero, so a dead API is
        not hammered; random, so several side-cars do not come back in lockstep."""
        step = min(self.cap_s, self.base_s * self.factor ** min(max(attempt, 0), 64))
        return step / 2 + step / 2 * rand


def backoff_delay(failures: int, first_s: float = 1.0, cap_s: float = 60.0) -> float:
    """The delay after the n-th failure in a row (n >= 1), jittered: the bridge's workers
    and MQTT session use this form."""
    return Backoff(base_s=first_s, cap_s=cap_s).delay(failures - 1, jitter())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every delay the side-car uses; tests shorten them, operators keep the defaults."""

    api: Backoff = field(default_factory=lambda: Backoff(base_s=1.0, cap_s=30.0))
    broker: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=5.0))
    # the outbox failing (disk full, a lock held too long): a person or a cleanup job fixes it
    storage: Backoff = field(default_factory=lambda: Backoff(base_s=1.0, cap_s=60.0))
    pause_s: float = 30.0  # 401/403: a person has to fix the token, so probe slowly
    max_retry_after_s: float = 3600.0  # a Retry-After beyond an hour is a misconfiguration
    retry_after_slack_s: float = 1.0  # land after the API's window resets, not on its edge

    def after_failure(self, retry_after_s: float | None, attempt: int, rand: float) -> float:
        """Delay after a retryable failure: the API's Retry-After when given, else backoff."""
        if retry_after_s is None:
            return self.api.delay(attempt, rand)
        return min(retry_after_s, self.max_retry_after_s) + self.retry_after_slack_s * rand

    def pause(self, rand: float) -> float:
        """Delay between probes while paused: pause_s give or take 20%."""
        return self.pause_s * (0.8 + 0.4 * rand)


@dataclass(slots=True)
class Throttle:
    """Rate limit for a repeating log line, per key: the first at once, then at most one per
    `every_s`, telling how many were held back in between."""

    every_s: float
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def allow(self, now: float, key: str = "") -> int | None:
        """None to stay quiet, else how many occurrences were held back since the last one."""
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)

    def due(self, now: float, key: str = "") -> bool:
        return self.allow(now, key) is not None

    def reset(self, key: str = "") -> None:
        """The condition ended: its next occurrence is news again."""
        self._last.pop(key, None)
        self._held.pop(key, None)
