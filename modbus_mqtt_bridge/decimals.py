"""The shortest decimal of a float32, so 228.6 reads as 228.6, not 228.60000610: one value
(`shortest_float32`) or every float32 of a decoded block together (`shorten_float32s`,
the hot path: one struct call per precision for the lot)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .errors import CodecError

_FLOAT32 = struct.Struct(">f")


def not_finite(raw: float) -> CodecError:
    return CodecError(f"value is {'NaN' if math.isnan(raw) else raw}")


def shorten_float32s(values: list[Any], indices: Sequence[int]) -> list[tuple[int, CodecError]]:
    """`shortest_float32` of every float32 at `indices`, in place, a precision at a time
    over all of them, so that each round trip through float32 is one struct call for the
    lot; (index, error) for a NaN or infinity, which stays as it is.

    The result is the same: the shortest precision p in 6..9 whose `.{p}g` round-trips.
    That p is found from 7 (where most measured values land, 7-8 digits), then 6 for those
    7 fits: p = 6 round-tripping implies p = 7 does (the nearest 7-digit decimal is at least
    as close as the nearest 6-digit one, which is also on the 7-digit grid).
    """
    errors: list[tuple[int, CodecError]] = []
    finite: list[int] = []
    for index in indices:
        raw = values[index]
        if math.isfinite(raw):
            finite.append(index)
        else:
            errors.append((index, not_finite(raw)))
    raws = values.copy()  # what each candidate must read back as
    fits7, pending = _round_trips(values, raws, finite, ".7g")
    _round_trips(values, raws, fits7, ".6g")
    for spec in (".8g", ".9g"):
        if not pending:
            break
        _, pending = _round_trips(values, raws, pending, spec, last=spec == ".9g")
    return errors


def _round_trips(
    values: list[Any], raws: list[Any], indices: list[int], spec: str, *, last: bool = False
) -> tuple[list[int], list[int]]:
    """Write `format(value, spec)` where it reads back as the same float32 (everywhere when
    `last`); the indices where it did and where it did not."""
    if not indices:
        return [], []
    candidates = [float(format(raws[i], spec)) for i in indices]
    if last:
        for i, candidate in zip(indices, candidates, strict=True):
            values[i] = candidate
        return indices, []
    codec = _float32s(len(indices))
    fits: list[int] = []
    misses: list[int] = []
    for i, candidate, back in zip(
        indices, candidates, codec.unpack(codec.pack(*candidates)), strict=True
    ):
        if back == raws[i]:
            values[i] = candidate
            fits.append(i)
        else:
            misses.append(i)
    return fits, misses


@lru_cache(maxsize=256)
def _float32s(count: int) -> struct.Struct:
    return struct.Struct(f">{count}f")


def shortest_float32(raw: float) -> float:
    """The shortest decimal that is still this float32, so 228.6 reads as 228.6, not 228.60000610.

    Six significant digits suffice for most values and nine for every float32.
    """
    for spec in (".6g", ".7g", ".8g"):
        candidate = float(format(raw, spec))
        if _FLOAT32.unpack(_FLOAT32.pack(candidate))[0] == raw:
            return candidate
    return float(format(raw, ".9g"))
