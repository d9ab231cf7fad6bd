"""Is this command allowed, and what exactly will it write? Pure, and the last gate before the bus.

Every rule of SPEC 3 is checked before anything touches a device: the device and register
exist, the register is writable, the value fits the register's type (no NaN or infinity,
integers in range and on the scale's grid, strings within length), it lies within the
register's `min`/`max` in engineering units, and the command is not older than
`commands.max_age` (a `ts` in the payload) nor past its MQTT 5 message expiry. A device
command is checked whole: one bad value refuses all of it, so nothing is half-written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import codec
from ..config.model import Config, Device, Register
from ..config.types import TYPES
from ..errors import CodecError
from .parse import Command, CommandError, CommandExpired, CommandIgnored, RawValue

Value = bool | int | float | str
_TEXT_FLAGS = {"true": True, "false": False, "on": True, "off": False, "1": True, "0": False}
# Tolerance when a scaled value must land on a whole raw number: 21.5 / 0.1 is 214.99999...
_GRID_TOLERANCE = 1e-6
_MAX_DIGITS = 40  # uint64 has 20; scale could add some, nothing real needs more


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the transport says about a command (MQTT flags and properties), and when it came."""

    received_at: float  # UTC seconds since the epoch
    retained: bool = False
    expiry_s: int | None = None  # MQTT 5 message expiry left when the broker delivered it


@dataclass(frozen=True, slots=True)
class Write:
    """One register to write: the checked value and the words (or bit) that carry it."""

    register: Register
    value: Value
    words: tuple[int, ...] | tuple[bool, ...]  # empty for a bit of a register (read-modify-write)


@dataclass(frozen=True, slots=True)
class Approved:
    """A command that may run: its writes in order, and the time after which it must not."""

    device: Device
    writes: tuple[Write, ...]
    deadline: float  # UTC seconds since the epoch


def screen(envelope: Envelope) -> None:
    """Before parsing: a retained command is never run (it would fire again on every reconnect)."""
    if envelope.retained:
        raise CommandIgnored("retained command ignored: a retained /set must never fire")


def check(config: Config, device_name: str, command: Command, envelope: Envelope) -> Approved:
    """Approve `command` for `device_name`, or raise CommandError with the precise reason."""
    device = find_device(config, device_name)
    deadline = deadline_of(command, envelope, config.commands.max_age_s)
    writes = tuple(_write(device, name, value) for name, value in command.values)
    return Approved(device, writes, deadline)


def find_device(config: Config, name: str) -> Device:
    for device in config.devices:
        if device.name == name:
            return device
    raise CommandError(f"unknown device {name!r}")


def find_register(device: Device, name: str) -> Register:
    for register in device.registers:
        if register.name == name:
            return register
    raise CommandError(f"unknown register {name!r} on device {device.name!r}")


def deadline_of(command: Command, envelope: Envelope, max_age_s: float) -> float:
    """The last moment the command may start writing; refuses one that is already too old."""
    now = envelope.received_at
    deadline = now + max_age_s
    if envelope.expiry_s is not None:
        deadline = min(deadline, now + envelope.expiry_s)
    if command.ts is not None:
        age = now - command.ts
        if age > max_age_s:
            raise CommandExpired(
                f"command is {age:.1f}s old (ts), older than commands.max_age {max_age_s:g}s"
            )
        if -age > max_age_s:
            # A ts from the future would keep a command valid for too long: clocks disagree.
            raise CommandExpired(f"command ts is {-age:.1f}s in the future: check the clocks")
        deadline = min(deadline, command.ts + max_age_s)
    return deadline


def too_late(deadline: float, now: float) -> CommandExpired:
    """The refusal for a command whose deadline passed before it could start writing."""
    late = now - deadline
    detail = f" ({late:.1f}s after its deadline)" if late >= 0.1 else ""
    return CommandExpired(f"command expired before it could be written{detail}")


def _write(device: Device, name: str, raw: RawValue) -> Write:
    register = find_register(device, name)
    if not register.writable:
        raise CommandError(f"register {name!r} is not writable")
    if not register.table.is_writable_table:
        raise CommandError(f"register {name!r} is in the {register.table.value} table: read-only")
    try:
        value = typed_value(raw, register)
        _in_limits(value, register)
        return Write(register, value, _encode(value, register))
    except CodecError as exc:
        raise CommandError(f"register {name!r}: {exc}") from None


def is_flag(register: Register) -> bool:
    return register.type == "bool" or register.bit is not None or register.table.is_bits


def typed_value(raw: RawValue, register: Register) -> Value:
    """The value as the register's type understands it; CodecError says why it does not fit."""
    if is_flag(register):
        return _flag(raw)
    if register.type == "string":
        if not isinstance(raw, str):
            raise CodecError(f"expected a string, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise CodecError(f"expected a number for {register.type}, got {raw!r}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise CodecError(f"{raw} is not a finite number")
    if isinstance(raw, int) and len(str(abs(raw))) > _MAX_DIGITS:
        # Beyond every register type; echoing hundreds of digits back helps nobody.
        raise CodecError(f"a number of {len(str(abs(raw)))} digits is out of range")
    if TYPES[register.type].is_integer:
        _on_grid(raw, register)
    return raw


def _flag(raw: RawValue) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TEXT_FLAGS:
        return _TEXT_FLAGS[raw.strip().lower()]
    raise CodecError(f"expected true/false, ON/OFF or 1/0, got {raw!r}")


def _on_grid(value: int | float, register: Register) -> None:
    """An integer register holds (value - offset) / scale: refuse values that would be rounded."""
    if register.scale == 0:
        raise CodecError("scale 0 cannot be inverted")
    try:
        raw = (value - register.offset) / register.scale
    except OverflowError:  # an integer beyond any float: beyond every register too
        raw = math.inf
    if not math.isfinite(raw):
        raise CodecError(f"{value!r} is out of range for {register.type}")
    if abs(raw - round(raw)) > _GRID_TOLERANCE * max(1.0, abs(raw)):
        step = f"a multiple of {register.scale:g}"
        if register.offset:
            step += f" plus {register.offset:g}"
        raise CodecError(f"{value!r} is not {step}: {register.type} would round it")


def _in_limits(value: Value, register: Register) -> None:
    if isinstance(value, bool | str):
        return
    if register.min is not None and value < register.min:
        raise CodecError(f"{value!r} is below min {register.min:g}")
    if register.max is not None and value > register.max:
        raise CodecError(f"{value!r} is above max {register.max:g}")


def _encode(value: Value, register: Register) -> tuple[int, ...] | tuple[bool, ...]:
    if register.bit is not None and not register.table.is_bits:
        codec.encode_bit(bool(value), 0, register.bit)  # validates the bit number only
        return ()
    return tuple(codec.encode(value, register))
