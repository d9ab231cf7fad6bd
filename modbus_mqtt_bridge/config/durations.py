"""Parse durations as written in a config (`5s`, `500ms`, `1min`, `1h30min`, `2`) into seconds."""

from __future__ import annotations

import math
import re

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "msec": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    # Go, Prometheus and systemd all read `m` as minutes; `ms` is spelled out above.
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(rf"\s*{_NUMBER}\s*")
_PART = re.compile(rf"\s*({_NUMBER})\s*([a-zA-Z]+)\s*")
_HINT = "use seconds or a number with a unit: 500ms, 5s, 1min, 2h, 1d"


class DurationError(ValueError):
    """A duration that cannot be read; the message says exactly why."""


def parse_duration(value: object) -> float:
    """Seconds for `value`: a number (seconds) or text like `5s`, `1.5s`, `500ms`, `1h30min`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"expected a duration ({_HINT}), got {type(value).__name__}")
    seconds = _parse_text(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds):
        raise DurationError(f"duration {value!r} is not finite")
    if seconds < 0:
        raise DurationError(f"duration {value!r} must not be negative")
    return seconds


def _parse_text(text: str) -> float:
    if _BARE.fullmatch(text):
        return float(text)
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise DurationError(f"invalid duration {text!r} ({_HINT})")
        number, unit = match.groups()
        factor = _UNITS.get(unit.lower())
        if factor is None:
            raise DurationError(f"unknown unit {unit!r} in duration {text!r} ({_HINT})")
        total += float(number) * factor
        pos = match.end()
    if pos == 0:
        raise DurationError(f"invalid duration {text!r} ({_HINT})")
    return total


_FORMAT_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 0.001))


def format_duration(seconds: float) -> str:
    """The shortest text for `seconds` that `parse_duration` reads back (1800.0 -> `30min`)."""
    if seconds == 0:
        return "0s"
    for unit, factor in _FORMAT_UNITS:
        count = seconds / factor
        if count >= 1 and math.isclose(count, round(count), abs_tol=1e-9):
            return f"{round(count)}{unit}"
    text = repr(float(seconds))
    if "e" in text:  # repr's exponent form is not a duration; fixed point is
        text = f"{seconds:.15f}".rstrip("0").rstrip(".")
    return f"{text}s"
