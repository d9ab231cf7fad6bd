"""execute on a fake port: function codes, read-modify-write, no blind retry, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.errors import ModbusExceptionResponse, ModbusTimeout
from modbus_mqtt_bridge.writes.check import Approved, check
from modbus_mqtt_bridge.writes.execute import DirectRunner, execute
from modbus_mqtt_bridge.writes.parse import CommandExpired, parse
from tests.unit.test_commands_check import CONFIG, DEVICE, FRESH, NOW


class FakePort:
    """Tables in memory; records every call as (function code, address, values)."""

    connected = True

    def __init__(self) -> None:
        self.tables: dict[Table, list[int]] = {t: [0] * 64 for t in Table}
        self.calls: list[tuple[int, int, list[int]]] = []
        self.fail_write: Exception | None = None
        self.write_lands = True  # with fail_write: did the device apply it anyway?

    async def read(self, table: Table, address: int, count: int, unit_id: int) -> list[int]:
        self.calls.append((3 if table is Table.HOLDING else 1, address, []))
        return self.tables[table][address : address + count]

    async def write_registers(
        self, address: int, values: list[int], unit_id: int, *, force_fc16: bool = False
    ) -> None:
        code = 16 if force_fc16 or len(values) > 1 else 6
        self._write(code, Table.HOLDING, address, values)

    async def mask_write_register(
        self, address: int, and_mask: int, or_mask: int, unit_id: int
    ) -> None:
        self.calls.append((22, address, [and_mask, or_mask]))
        word = self.tables[Table.HOLDING][address]
        self.tables[Table.HOLDING][address] = (word & and_mask) | (or_mask & ~and_mask)

    async def write_coils(self, address: int, values: list[bool], unit_id: int) -> None:
        self._write(15 if len(values) > 1 else 5, Table.COIL, address, [int(v) for v in values])

    def _write(self, code: int, table: Table, address: int, values: list[int]) -> None:
        self.calls.append((code, address, list(values)))
        if self.fail_write is None or self.write_lands:
            self.tables[table][address : address + len(values)] = values
        if self.fail_write is not None:
            raise self.fail_write


def _approved(register: str, payload: bytes, device: Any = DEVICE) -> Approved:
    config = replace(CONFIG, devices=(device,))
    return check(config, "meter1", parse(payload, register, 4096), FRESH)


def _approved_device(payload: bytes) -> Approved:
    return check(CONFIG, "meter1", parse(payload, None, 4096), FRESH)


def _run(approved: Approved, port: FakePort, clock: Callable[[], float] = lambda: NOW) -> Any:
    return asyncio.run(execute(approved, DirectRunner(port), clock))  # type: ignore[arg-type]


def _writes(port: FakePort) -> list[int]:
    return [code for code, _, _ in port.calls if code in (5, 6, 15, 16)]


@pytest.mark.parametrize(
    ("register", "payload", "codes"),
    [("counter", b"7", [6]), ("setpoint", b"21.5", [16]), ("pump", b"ON", [5])],
)
def test_function_codes(register: str, payload: bytes, codes: list[int]) -> None:
    port = FakePort()
    (result,) = _run(_approved(register, payload), port)
    assert result.ok and _writes(port) == codes
    assert result.reading is not None and result.reading.value == result.value


def test_always_fc16() -> None:
    port = FakePort()
    _run(_approved("counter", b"7", replace(DEVICE, always_fc16=True)), port)
    assert _writes(port) == [16]


def test_bit_is_read_modify_write() -> None:
    port = FakePort()
    port.tables[Table.HOLDING][4] = 0b1000_0001
    (result,) = _run(_approved("flag", b"true"), port)
    assert result.ok and result.readback is True
    assert port.calls[:2] == [(3, 4, []), (6, 4, [0b1000_1001])]


@pytest.mark.parametrize(
    ("payload", "masks", "after"),
    [(b"true", [0xFFF7, 0x0008], 0b1000_1001), (b"false", [0xFFF7, 0], 0b1000_0001)],
)
def test_bit_write_mask_is_one_fc22(payload: bytes, masks: list[int], after: int) -> None:
    port = FakePort()
    port.tables[Table.HOLDING][4] = 0b1000_0001 | (8 if payload == b"false" else 0)
    flag = next(r for r in DEVICE.registers if r.name == "flag")
    masked = replace(DEVICE, registers=(replace(flag, bit_write="mask"),))
    (result,) = _run(_approved("flag", payload, masked), port)
    assert result.ok and port.calls[0] == (22, 4, masks)
    assert port.tables[Table.HOLDING][4] == after


def test_timeout_then_read_back_decides_without_resending() -> None:
    port = FakePort()
    port.fail_write = ModbusTimeout("no answer")
    (landed,) = _run(_approved("counter", b"7"), port)
    assert landed.ok and landed.readback == 7
    port = FakePort()
    port.fail_write, port.write_lands = ModbusTimeout("no answer"), False
    (lost,) = _run(_approved("counter", b"7"), port)
    assert not lost.ok and lost.readback == 0
    assert "write not confirmed (no answer)" in (lost.error or "")
    assert _writes(port) == [6]  # exactly one attempt


def test_exception_response_is_a_refusal_even_if_the_value_is_there() -> None:
    port = FakePort()
    port.tables[Table.HOLDING][3] = 7
    port.fail_write, port.write_lands = ModbusExceptionResponse(2, "exception 2"), False
    (result,) = _run(_approved("counter", b"7"), port)
    assert not result.ok and "device refused the write" in (result.error or "")


def test_device_command_stops_at_the_first_failure() -> None:
    port = FakePort()
    port.fail_write, port.write_lands = ModbusExceptionResponse(4, "exception 4"), False
    results = _run(_approved_device(b'{"counter": 1, "pump": true}'), port)
    assert [r.ok for r in results] == [False, False]
    assert "failed first" in (results[1].error or "")
    assert _writes(port) == [6]


def test_device_command_writes_in_order() -> None:
    port = FakePort()
    results = _run(_approved_device(b'{"counter": 1, "pump": true}'), port)
    assert [r.ok for r in results] == [True, True]
    assert _writes(port) == [6, 5]


class SlowRunner:
    """A worker busy with something else until `release` is set."""

    def __init__(self, port: FakePort) -> None:
        self.port = port
        self.release = asyncio.Event()

    async def run_exclusive(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        await self.release.wait()
        return await fn(self.port)


def test_a_command_not_started_by_its_deadline_is_never_written() -> None:
    async def main() -> None:
        port = FakePort()
        runner = SlowRunner(port)
        approved = replace(_approved("counter", b"7"), deadline=0.0)  # already due
        loop = asyncio.get_running_loop()
        with pytest.raises(CommandExpired):
            await execute(approved, runner, lambda: loop.time() + 1)  # type: ignore[arg-type]
        runner.release.set()
        for _ in range(5):  # let the abandoned job reach the worker ...
            await asyncio.sleep(0)
        assert _writes(port) == []  # ... and refuses to write

    asyncio.run(main())
