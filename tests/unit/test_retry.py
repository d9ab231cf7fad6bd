"""Retry timing: capped exponential backoff with jitter, Retry-After, pause cadence, throttles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbus_mqtt_bridge.retry import Backoff, RetryPolicy, Throttle, jitter

BACKOFF = Backoff(base_s=1.0, cap_s=30.0)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (0, 0.5, 1.0),
        (1, 1.0, 2.0),
        (2, 2.0, 4.0),
        (4, 8.0, 16.0),
        (5, 15.0, 30.0),
        (50, 15.0, 30.0),
    ],
)
def test_backoff_doubles_then_caps(attempt: int, low: float, high: float) -> None:
    assert BACKOFF.delay(attempt, 0.0) == low
    assert BACKOFF.delay(attempt, 0.999999) == pytest.approx(high, rel=1e-5)


@given(st.integers(min_value=-5, max_value=10_000), st.floats(min_value=0, max_value=0.999999))
def test_backoff_is_never_zero_never_above_cap(attempt: int, rand: float) -> None:
    delay = BACKOFF.delay(attempt, rand)
    assert 0.5 <= delay <= 30.0


def test_retry_after_wins_over_backoff_and_lands_after_it() -> None:
    policy = RetryPolicy()
    assert policy.after_failure(60.0, attempt=0, rand=0.0) == 60.0
    assert 60.0 <= policy.after_failure(60.0, attempt=9, rand=0.99) <= 61.0
    assert policy.after_failure(None, attempt=2, rand=0.0) == 2.0


def test_absurd_retry_after_is_capped() -> None:
    assert RetryPolicy().after_failure(10 * 86400.0, 0, 0.0) == 3600.0


def test_pause_is_slow_and_jittered() -> None:
    policy = RetryPolicy(pause_s=30.0)
    assert policy.pause(0.0) == 24.0
    assert policy.pause(0.999999) == pytest.approx(36.0, rel=1e-5)


def test_throttle_lets_one_through_per_period_and_resets() -> None:
    throttle = Throttle(60.0)
    assert throttle.due(100.0)
    assert not throttle.due(130.0)
    assert throttle.due(160.0)
    throttle.reset()
    assert throttle.due(161.0)


def test_jitter_is_a_fraction() -> None:
    assert all(0.0 <= jitter() < 1.0 for _ in range(100))
