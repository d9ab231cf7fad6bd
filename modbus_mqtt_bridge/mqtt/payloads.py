"""Payload encoders: the JSON half of the MQTT contract (SPEC 3), pure and hot-path cheap.

The static part of each register's reading JSON is rendered once per register; a
publish only adds the value and the timestamp.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache

from ..config.model import Register
from ..readings import Reading, Value

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def iso_ms(ts_ms: int) -> str:
    """UTC ISO-8601 with milliseconds and Z, e.g. 2025-07-08T16:00:00.000Z."""
    seconds, millis = divmod(ts_ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@cache
def _reading_tail(device_id: int | None, register: Register) -> str:
    """Everything after "ts": the fields fixed by the config.

    Keyed on the device's id, not the Device: a frozen Device hashes all its registers, which
    made every reading cost O(registers of its device) (1 ms each at 2,000 registers).
    """
    rest = {
        "device_id": device_id,
        "parameter": register.parameter,
        "register_address": register.register_address,
        "data_type": register.data_type,
        "description": register.description,
    }
    return _dumps(rest)[1:]  # drop "{": spliced after the ts field


@cache
def _reading_head(register: Register) -> str:
    return ',"unit":' + _dumps(register.engineering_unit) + ',"ts":"'


def encode_value(value: Value) -> str:
    """JSON for one value; floats and ints skip the encoder (the hot path: repr is JSON)."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError("a non-finite value is not a reading")
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    return _dumps(value)


def reading_json(reading: Reading) -> str:
    """{"value":…,"unit":…,"ts":…,"device_id":…,"parameter":…,"register_address":…,
    "data_type":…,"description":…} — the self-describing reading of SPEC 3."""
    return (
        '{"value":'
        + encode_value(reading.value)
        + _reading_head(reading.register)
        + iso_ms(reading.ts_ms)
        + '",'
        + _reading_tail(reading.device.id, reading.register)
    )


def device_json(ts_ms: int, values: Mapping[str, Value] | Iterable[tuple[str, Value]]) -> str:
    """One device's latest values in one object, zigbee2mqtt's shape: {"ts":…, name: value…}."""
    body: dict[str, object] = {"ts": iso_ms(ts_ms)}
    body.update(values)
    return _dumps(body)


def status_text(online: bool) -> str:
    return "online" if online else "offline"
