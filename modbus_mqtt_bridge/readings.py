"""What flows from the poller to the publisher: readings, read failures, device status."""

from __future__ import annotations

from dataclasses import dataclass

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
