"""Typed reading of one raw config mapping, recording each problem under its path, not raising.

A getter that finds a bad value reports it and returns the default, so validation carries on and
the user sees every problem in one run. `null` means the same as leaving a key out.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..errors import Problem
from .durations import DurationError, parse_duration

T = TypeVar("T")


@dataclass(frozen=True)
class Unresolved:
    """A `${VAR}` whose variable is unset: the loader reported it, so getters stay quiet."""

    text: str


class EnvText(str):
    """Text produced by `${VAR}` expansion: a number or boolean field may read it as one."""

    __slots__ = ()

    def as_scalar(self) -> object:
        """What YAML would have read had the value been written in place (`502` -> 502)."""
        text = self.strip()
        if re.fullmatch(r"[-+]?\d+", text):
            return int(text)
        if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
            return float(text)
        return _BOOLS.get(text.lower(), str(self))


_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


class FieldError(ValueError):
    """Raised by a converter; its message becomes the problem's message."""


class _Missing:
    """Marks a key that is absent (or null)."""


MISSING = _Missing()
_PARENT = re.compile(r"^(.*?)(?:\.[^.\[\]]*|\[\d+\])$")


def join(path: str, key: str) -> str:
    """`path.key`; a key with control characters is shown quoted, so a problem stays one line."""
    shown = key if key.isprintable() else repr(key)
    return f"{path}.{shown}" if path else shown


def describe(value: object) -> str:
    """A value as the user wrote it, for messages: 'abc', 12, true, null, a list."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str | int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "a list"
    return "a mapping" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def suggest(word: str, candidates: Iterator[str] | list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' for the closest candidate, or ''."""
    hits = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {hits[0]}?)" if hits else ""


def segment_problem(name: str) -> str | None:
    """Why `name` cannot be one MQTT topic level, or None if it can."""
    if not name:
        return "must not be empty"
    for char in ("/", "+", "#"):
        if char in name:
            return f"{name!r} contains {char!r}, which cannot appear in an MQTT topic level"
    if not name.isprintable():
        return f"{name!r} contains a control character"
    if name != name.strip():
        return f"{name!r} has leading or trailing spaces"
    return None


def segment_name(reserved: Mapping[str, str]) -> Callable[[object], str]:
    """Converter for a name used as one topic level, refusing the reserved ones."""

    def convert(value: object) -> str:
        name = to_text(value)
        problem = segment_problem(name)
        if problem:
            raise FieldError(problem)
        if name in reserved:
            raise FieldError(f"{name!r} is reserved: {reserved[name]}")
        return name

    return convert


class Problems:
    """Every problem found so far, each with the YAML line of its path (or its nearest parent)."""

    def __init__(self, lines: Mapping[str, int] | None = None) -> None:
        self.items: list[Problem] = []
        self._lines = lines or {}

    def add(self, path: str, message: str) -> None:
        self.items.append(Problem(path, message, self.line(path)))

    def line(self, path: str) -> int | None:
        while path:
            if path in self._lines:
                return self._lines[path]
            match = _PARENT.match(path)
            path = match.group(1) if match else ""
        return self._lines.get("")

    def __bool__(self) -> bool:
        return bool(self.items)


class Fields:
    """One mapping of the raw config, read key by key; keys never read are reported as unknown."""

    def __init__(self, raw: object, path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        self.known: dict[str, None] = {}  # keys asked for, in order (a dict: O(1) membership)
        self.raw: Mapping[object, object] = {}
        self.ok = raw is None or isinstance(raw, Mapping)
        if isinstance(raw, Mapping):
            self.raw = raw
        elif not self.ok and not isinstance(raw, Unresolved):
            problems.add(path, f"expected a mapping, got {describe(raw)}")

    def at(self, key: str) -> str:
        return join(self.path, key)

    def get(self, key: str) -> object:
        """The raw value, or MISSING when absent or null; marks the key as known."""
        self.known[key] = None
        value = self.raw.get(key)
        return MISSING if value is None else value

    def present(self, key: str) -> bool:
        self.known[key] = None
        return self.raw.get(key) is not None

    def declare(self, *keys: str) -> None:
        """Mark keys as known without reading them (handled elsewhere)."""
        for key in keys:
            self.get(key)

    def report(self, key: str, message: str) -> None:
        self.problems.add(self.at(key), message)

    def convert(self, key: str, converter: Callable[[object], T], default: T) -> T:
        """Apply `converter` to the value; on FieldError report it and return `default`."""
        self.known[key] = None  # self.get inlined: this runs ~20 times per register
        value = self.raw.get(key)
        if value is None or isinstance(value, Unresolved):
            return default
        try:
            return converter(value)
        except FieldError as exc:
            if isinstance(value, EnvText):  # `port: ${PORT}` must still give an int
                try:
                    return converter(value.as_scalar())
                except FieldError:
                    pass
            self.report(key, str(exc))
            return default

    def required(self, key: str, converter: Callable[[object], T], why: str = "") -> T | None:
        """Like convert, but a missing key is a problem; returns None when missing or bad."""
        value = self.get(key)
        if value is MISSING:
            self.report(key, f"missing required key{why}")
            return None
        return self.convert(key, converter, None)

    def text(self, key: str, default: str) -> str:
        return self.convert(key, to_text, default)

    def opt_text(self, key: str) -> str | None:
        return self.convert(key, to_text, None)

    def integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        return self.convert(key, int_in(lo, hi), default)

    def number(self, key: str, default: float, lo: float | None = None) -> float:
        return self.convert(key, number_at_least(lo), default)

    def opt_number(self, key: str, lo: float | None = None) -> float | None:
        return self.convert(key, number_at_least(lo), None)

    def boolean(self, key: str, default: bool) -> bool:
        return self.convert(key, to_bool, default)

    def duration(self, key: str, default: float, *, zero_ok: bool = False) -> float:
        return self.convert(key, duration_converter(zero_ok), default)

    def opt_duration(self, key: str, *, zero_ok: bool = False) -> float | None:
        return self.convert(key, duration_converter(zero_ok), None)

    def choice(self, key: str, default: T, choices: Mapping[str, T]) -> T:
        return self.convert(key, choice_converter(choices), default)

    def section(self, key: str) -> Fields:
        value = self.get(key)
        return Fields(None if value is MISSING else value, self.at(key), self.problems)

    def items(self, key: str) -> list[tuple[str, object]]:
        """(path, raw item) for each item of a list; a non-list is reported."""
        value = self.get(key)
        if value is MISSING or isinstance(value, Unresolved):
            return []
        if not isinstance(value, list | tuple):
            self.report(key, f"expected a list, got {describe(value)}")
            return []
        at = self.at(key)
        return [(f"{at}[{i}]", item) for i, item in enumerate(value)]

    def finish(self) -> None:
        """Report every key that no getter asked for, with the closest known key."""
        for key in self.raw:
            name = str(key)
            if name not in self.known:
                name = name if name.isprintable() else repr(name)
                known = list(self.known)
                hint = suggest(name, known) or f" (known: {', '.join(sorted(known))})"
                self.report(name, f"unknown key{hint}")


def to_text(value: object) -> str:
    if not isinstance(value, str):
        raise FieldError(f"expected text, got {describe(value)}")
    return str(value)  # a plain str, also for EnvText


def to_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"expected true or false, got {describe(value)}")
    return value


@functools.cache  # a register asks for the same few converters each time
def int_in(lo: int | None, hi: int | None) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"expected an integer, got {describe(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise FieldError(f"{value} is out of range ({_range(lo, hi)})")
        return value

    return convert


def _range(lo: float | None, hi: float | None) -> str:
    if hi is None:
        return f"at least {lo}"
    if lo is None:
        return f"at most {hi}"
    return f"{lo}..{hi}"


@functools.cache  # a register asks for the same few converters each time
def number_at_least(lo: float | None) -> Callable[[object], float]:
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(f"expected a number, got {describe(value)}")
        if not math.isfinite(value):
            raise FieldError(f"expected a finite number, got {describe(value)}")
        if lo is not None and value < lo:
            raise FieldError(f"{value} is out of range ({_range(lo, None)})")
        return float(value)

    return convert


@functools.cache  # a register asks for the same few converters each time
def duration_converter(zero_ok: bool) -> Callable[[object], float]:
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise FieldError(f"expected a duration (e.g. 5s, 500ms, 1min), got {describe(value)}")
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise FieldError(str(exc)) from None
        if seconds == 0 and not zero_ok:
            raise FieldError("must be longer than 0")
        return seconds

    return convert


def choice_converter(choices: Mapping[str, T]) -> Callable[[object], T]:
    def convert(value: object) -> T:
        key = str(value).strip().lower() if isinstance(value, str | int | float) else None
        if isinstance(value, bool) or key is None or key not in choices:
            names = ", ".join(dict.fromkeys(str(c) for c in choices.values()))
            hint = suggest(key, list(choices)) if key else ""
            raise FieldError(f"expected one of {names}, got {describe(value)}{hint}")
        return choices[key]

    return convert
