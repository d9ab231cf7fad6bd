"""Retry timing, pure: capped exponential backoff with jitter, the pause cadence, log throttles.

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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every delay the side-car uses; tests shorten them, operators keep the defaults."""

    api: Backoff = field(default_factory=lambda: Backoff(base_s=1.0, cap_s=30.0))
    broker: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=5.0))
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
    """True at most once per `every_s`: repeats of a log line are rate-limited."""

    every_s: float
    last: float | None = None

    def due(self, now: float) -> bool:
        if self.last is not None and now - self.last < self.every_s:
            return False
        self.last = now
        return True

    def reset(self) -> None:
        """The condition ended: its next occurrence is news again."""
        self.last = None
