"""Payload encoders: the JSON half of the MQTT contract (SPEC 3), pure and hot-path cheap.

The static part of each register's reading JSON is rendered once per register; a
publish only adds the value and the timestamp.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple

from ..config.model import Device, Register
from ..readings import Reading, Value

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def iso_ms(ts_ms: int) -> str:
    """UTC ISO-8601 with milliseconds and Z, e.g. 2025-07-08T16:00:00.000Z."""
    seconds, millis = divmod(ts_ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class ReadingTemplate(NamedTuple):
    """The config-fixed parts of one register's reading JSON, rendered once: a publish only
    splices in the value and the timestamp. (Callers cache it by names: hashing the frozen
    Register or Device on every reading would cost more than the whole render.)"""

    head: str  # after the value, up to the opening quote of ts
    tail: str  # after ts: device_id ... description and the closing brace


def reading_template(device: Device, register: Register) -> ReadingTemplate:
    rest = {
        "device_id": device.id,
        "parameter": register.parameter,
        "register_address": register.register_address,
        "data_type": register.data_type,
        "description": register.description,
    }
    head = ',"unit":' + _dumps(register.engineering_unit) + ',"ts":"'
    return ReadingTemplate(head, '",' + _dumps(rest)[1:])


def render(template: ReadingTemplate, value: Value, stamp: str) -> str:
    """stamp: iso_ms(ts), formatted once for the readings of one request, which share it."""
    return f'{{"value":{encode_value(value)}{template.head}{stamp}{template.tail}'


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
    template = reading_template(reading.device, reading.register)
    return render(template, reading.value, iso_ms(reading.ts_ms))


def device_json(ts_ms: int, values: Mapping[str, Value] | Iterable[tuple[str, Value]]) -> str:
    """One device's latest values in one object, zigbee2mqtt's shape: {"ts":…, name: value…}."""
    body: dict[str, object] = {"ts": iso_ms(ts_ms)}
    body.update(values)
    return _dumps(body)


def status_text(online: bool) -> str:
    return "online" if online else "offline"
