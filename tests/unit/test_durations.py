"""Durations as written in a config -> float seconds, and back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("500ms", 0.5),
        ("1min", 60.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("5", 5.0),
        ("2.5", 2.5),
        (5, 5.0),
        (0.25, 0.25),
        (0, 0.0),
        ("1m", 60.0),
        ("1d", 86400.0),
        ("1h30min", 5400.0),
        ("1h 30m 15s", 5415.0),
        (" 10 s ", 10.0),
        ("3 minutes", 180.0),
        ("2 hours", 7200.0),
        ("30sec", 30.0),
        ("250 msec", 0.25),
        ("5S", 5.0),
        ("30min", 1800.0),
    ],
)
def test_parses(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "invalid duration 'abc'"),
        ("5x", "unknown unit 'x'"),
        ("5 fortnights", "unknown unit 'fortnights'"),
        ("", "invalid duration ''"),
        ("s", "invalid duration 's'"),
        ("-5s", "invalid duration '-5s'"),
        ("5s5", "invalid duration '5s5'"),
        ("1e3", "unknown unit 'e' in duration '1e3'"),
        ("nan", "invalid duration 'nan'"),
        (-1, "must not be negative"),
        (float("inf"), "not finite"),
        (float("nan"), "not finite"),
        (True, "got bool"),
        (None, "got NoneType"),
        ([5], "got list"),
    ],
)
def test_rejects_with_a_precise_message(value: object, fragment: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert fragment in str(info.value)


def test_error_is_a_value_error() -> None:
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1800.0, "30min"),
        (5.0, "5s"),
        (0.5, "500ms"),
        (7200.0, "2h"),
        (86400.0, "1d"),
        (90.0, "90s"),
        (0.0, "0s"),
        (1.25, "1250ms"),
        (0.0001, "0.0001s"),
        (1e-05, "0.00001s"),
    ],
)
def test_formats(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_format_reads_back(seconds: float) -> None:
    assert math.isclose(
        parse_duration(format_duration(seconds)), seconds, rel_tol=1e-9, abs_tol=1e-9
    )
