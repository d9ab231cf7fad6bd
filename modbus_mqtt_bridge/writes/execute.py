"""Run approved writes on the bus: through the connection's worker, confirmed by a read-back.

One command is one worker job, so it waits for at most one in-flight poll request and a
bit-of-register read-modify-write cannot interleave with another poll or command. Function
codes: FC5 one coil, FC15 several, FC6 one register, FC16 several (or always, for
`always_fc16` devices), FC22 (mask write) for a bit of a register with `bit_write: mask`.
A write is never re-sent: after a timeout or a lost answer a read-back decides, and the
result is `ok` only if the register now holds the value. A command whose deadline passes
before its job starts is refused, never written late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .. import codec
from ..config.model import Device
from ..errors import CodecError, ModbusError, ModbusExceptionResponse
from ..modbus.port import ModbusPort
from ..readings import Reading
from .check import Approved, Value, Write, too_late

T = TypeVar("T")
Clock = Callable[[], float]


class Runner(Protocol):
    """Who owns the connection: the bridge's Worker, or `DirectRunner` for the CLI."""

    port: ModbusPort

    async def run_exclusive(self, fn: Callable[[ModbusPort], Awaitable[T]]) -> T: ...


class DirectRunner:
    """The CLI's runner: nothing else uses the port, so a job simply runs."""

    def __init__(self, port: ModbusPort) -> None:
        self.port = port

    async def run_exclusive(self, fn: Callable[[ModbusPort], Awaitable[T]]) -> T:
        return await fn(self.port)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The answer for one register; `reading` is the read-back to publish, if there is one."""

    register: str
    ok: bool
    value: Value
    readback: Value | None = None
    error: str | None = None
    readback_error: str | None = None  # acknowledged write whose read-back failed
    reading: Reading | None = field(default=None, compare=False)


@dataclass
class _Ticket:
    """Shared by the waiting command and its job; asyncio runs both on one thread."""

    started: bool = False
    abandoned: bool = False


async def execute(
    approved: Approved, runner: Runner, clock: Clock = time.time
) -> list[WriteResult]:
    """Write every register of `approved` in one worker job; raises CommandExpired if too late.

    At the deadline a job that has not started is abandoned (it refuses to run when the
    worker reaches it); a job already writing is waited for, so the answer is always true.
    """
    ticket = _Ticket()

    async def job(port: ModbusPort) -> list[WriteResult]:
        if ticket.abandoned or clock() > approved.deadline:
            raise too_late(approved.deadline, clock())
        ticket.started = True
        return await _write_all(port, approved.device, approved.writes)

    future = asyncio.ensure_future(runner.run_exclusive(job))
    future.add_done_callback(_consume)
    try:
        return await asyncio.wait_for(asyncio.shield(future), max(0.0, approved.deadline - clock()))
    except TimeoutError:
        if ticket.started:
            return await future
        ticket.abandoned = True
        raise too_late(approved.deadline, clock()) from None


def _consume(future: asyncio.Future[list[WriteResult]]) -> None:
    # An abandoned job's refusal has no reader; fetch it so asyncio does not report it lost.
    if not future.cancelled():
        future.exception()


async def _write_all(
    port: ModbusPort, device: Device, writes: Sequence[Write]
) -> list[WriteResult]:
    """Write in order; after a failure the rest is not attempted (and says so)."""
    results: list[WriteResult] = []
    for write in writes:
        if results and not results[-1].ok:
            error = f"not written: the write to {results[-1].register!r} failed first"
            results.append(WriteResult(write.register.name, False, write.value, error=error))
            continue
        results.append(await _write_one(port, device, write))
    return results


async def _write_one(port: ModbusPort, device: Device, write: Write) -> WriteResult:
    register = write.register
    words = list(write.words)
    if register.bit is not None and not register.table.is_bits and register.bit_write == "mask":
        words = []  # FC22: the device changes the one bit itself, nothing to read first
    elif register.bit is not None and not register.table.is_bits:
        # Read-modify-write inside this one job: no poll or command can slip in between,
        # but the device itself may change another bit between our read and our write,
        # and this write would undo that change (`bit_write: mask` avoids it with FC22).
        try:
            (current,) = await port.read(register.table, register.address, 1, device.unit_id)
            words = [codec.encode_bit(bool(write.value), current, register.bit)]
        except (ModbusError, CodecError) as exc:
            error = f"not written: cannot read the register to change bit {register.bit}: {exc}"
            return WriteResult(register.name, False, write.value, error=error)
    failure: str | None = None
    trusted = True
    try:
        await _send(port, device, write, words)
    except ModbusExceptionResponse as exc:
        # The device said no: whatever it holds now, this write did not happen.
        failure, trusted = f"device refused the write: {exc}", False
    except ModbusError as exc:
        # No (valid) answer: the write may or may not have landed. Never re-send; look.
        failure = f"write not confirmed ({exc})"
    return _answer(device, write, await _read_back(port, device, write), failure, trusted)


async def _send(
    port: ModbusPort, device: Device, write: Write, words: list[int] | list[bool]
) -> None:
    """The function code that fits: FC5/FC15 coils, FC6 one register, FC16 several, FC22 a
    bit of a register with `bit_write: mask`."""
    address = write.register.address
    bit = write.register.bit
    if bit is not None and write.register.bit_write == "mask":
        set_mask = 1 << bit
        or_mask = set_mask if write.value else 0
        await port.mask_write_register(address, 0xFFFF ^ set_mask, or_mask, device.unit_id)
    elif write.register.table.is_bits:
        await port.write_coils(address, [bool(w) for w in words], device.unit_id)
    else:
        await port.write_registers(
            address, [int(w) for w in words], device.unit_id, force_fc16=device.always_fc16
        )


@dataclass(frozen=True, slots=True)
class _Readback:
    raw: list[int] | None = None
    value: Value | None = None
    error: str | None = None


async def _read_back(port: ModbusPort, device: Device, write: Write) -> _Readback:
    register = write.register
    try:
        raw = await port.read(register.table, register.address, register.count, device.unit_id)
    except ModbusError as exc:
        return _Readback(error=f"read-back failed: {exc}")
    try:
        return _Readback(raw, codec.decode(raw, register))
    except CodecError as exc:
        return _Readback(raw, error=f"read-back undecodable: {exc}")


def _answer(
    device: Device, write: Write, back: _Readback, failure: str | None, trusted: bool
) -> WriteResult:
    """ok only when the device did not refuse and the register holds the value now."""
    name, value = write.register.name, write.value
    reading = None
    if back.value is not None:
        reading = Reading(device, write.register, back.value, time.time_ns() // 1_000_000)
    if failure is None and back.raw is None:
        # The device acknowledged the write, which Modbus defines as done; say what we lack.
        return WriteResult(name, True, value, None, None, back.error)
    holds = back.raw is not None and _holds(write, back.raw)
    if trusted and holds:
        return WriteResult(name, True, value, back.value, None, back.error, reading)
    error = failure or "the device acknowledged the write but holds another value"
    if back.error is not None:
        error = f"{error}; {back.error}"
    elif failure is not None and trusted:
        error = f"{error}; the read-back shows the value was not written"
    return WriteResult(name, False, value, back.value, error, None, reading)


def _holds(write: Write, raw: Sequence[int]) -> bool:
    """Compare raw words, not decoded values: exact, whatever the scale or float rounding."""
    register = write.register
    if register.table.is_bits:
        return [bool(b) for b in raw] == [bool(b) for b in write.words]
    if register.bit is not None:
        return bool(raw[0] >> register.bit & 1) == bool(write.value)
    return [int(w) for w in raw] == [int(w) for w in write.words]
