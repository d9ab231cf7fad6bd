"""What flows from the poller to the publisher: readings, read failures, device status, the
Sink they flow into, and the publish filter that decides which readings are worth sending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .config.model import Device, Register

Value = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded value, stamped with the UTC wall-clock time it was read (ms since epoch)."""

    device: Device
    register: Register
    value: Value
    ts_ms: int


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """A register that could not be read or decoded this tick, and why."""

    device: Device
    register: Register
    error: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device became reachable (online) or stopped answering (offline)."""

    device: Device
    online: bool
    reason: str = ""


class Sink(Protocol):
    """Where a worker's results go (the status board in front of the publish path, or
    `once`'s collector).

    A device's tick arrives in parts: `on_readings` once per request, as soon as it is
    decoded (so its per-register messages need not wait for the device's last read; a
    device not yet known online sends its first tick in one part, after its `online`), then
    `on_tick_end` once the tick, or the part of it before a command, is complete: what
    spans the whole device (its device payload) is rendered there.
    """

    def on_readings(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None: ...

    def on_tick_end(self, device: Device) -> None: ...

    def on_status(self, status: DeviceStatus) -> None: ...


class PublishFilter:
    """Deadband and max_age per register: which readings are worth publishing (SPEC 2).

    No deadband and no max_age: every reading. A deadband: only a change beyond it.
    A max_age: also any reading once the last published one is that old. With a max_age
    but no deadband, any change publishes.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Value, float]] = {}

    def admit(self, reading: Reading, now: float) -> bool:
        register = reading.register
        if register.deadband is None and register.max_age_s is None:
            return True
        key = (reading.device.name, register.name)
        last = self._last.get(key)
        if (
            last is None
            or _changed(last[0], reading.value, register.deadband)
            or (register.max_age_s is not None and now - last[1] >= register.max_age_s)
        ):
            self._last[key] = (reading.value, now)
            return True
        return False

    def forget(self, device: str) -> None:
        """Publish the next reading of this device whatever it is (after it was offline)."""
        for key in [k for k in self._last if k[0] == device]:
            del self._last[key]


def _changed(old: Value, new: Value, deadband: float | None) -> bool:
    numeric = (int, float)
    if (
        deadband is not None
        and isinstance(old, numeric)
        and isinstance(new, numeric)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
    ):
        return abs(new - old) > deadband
    return old != new
