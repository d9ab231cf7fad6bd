"""Isolating refused registers: few reads, every good value kept, bad ones alone."""

from __future__ import annotations

import asyncio

import pytest

from modbus_mqtt_bridge.config.model import Device, Register
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.errors import ModbusExceptionResponse, ModbusTimeout
from modbus_mqtt_bridge.modbus import isolate
from modbus_mqtt_bridge.plan import PlannedValue, ReadRequest


def _request(n: int) -> ReadRequest:
    regs = tuple(
        Register(
            f"r{i}", f"r{i}", Table.HOLDING, 100 + 2 * i, 40101 + 2 * i, "float32", "float32", 1.0
        )
        for i in range(n)
    )
    device = Device("dev", 1, "lan", 1, regs)
    values = tuple(PlannedValue(r, 2 * i) for i, r in enumerate(regs))
    return ReadRequest("lan", device, Table.HOLDING, 100, 2 * n, 1.0, values)


def _reader(bad: set[int], calls: list[ReadRequest]) -> isolate.Read:
    async def read(req: ReadRequest) -> list[int]:
        calls.append(req)
        if any(a in bad for a in range(req.address, req.address + req.count)):
            raise ModbusExceptionResponse(2, "exception 2 (illegal data address)")
        return list(range(req.address, req.address + req.count))

    return read


REFUSED = ModbusExceptionResponse(2, "exception 2 (illegal data address)")


@pytest.mark.parametrize(("n", "bad_values"), [(1, {0}), (8, {3}), (16, {0, 15}), (50, {7, 8, 31})])
def test_isolation_finds_exactly_the_refused_values(n: int, bad_values: set[int]) -> None:
    request = _request(n)
    bad_addresses = {100 + 2 * i for i in bad_values}
    calls: list[ReadRequest] = []
    found = asyncio.run(isolate.isolate(request, _reader(bad_addresses, calls), REFUSED, now=0.0))
    assert {b.planned.register.name for b in found.split.bad} == {f"r{i}" for i in bad_values}
    good_names = {v.register.name for part in found.split.good for v in part.values}
    assert good_names == {f"r{i}" for i in range(n)} - {f"r{i}" for i in bad_values}
    # every good value was read on the way, with the right words at the right offsets
    for part, block in found.blocks:
        for v in part.values:
            assert block[v.offset] == v.register.address
    assert len(calls) <= 2 * max(1, len(bad_values)) * max(1, n.bit_length()) + 1
    assert all(b.retry_at == isolate.REPROBE_FIRST_S for b in found.split.bad)


def test_a_timeout_while_isolating_is_a_device_failure() -> None:
    async def read(_req: ReadRequest) -> list[int]:
        raise ModbusTimeout("no answer")

    with pytest.raises(ModbusTimeout):
        asyncio.run(isolate.isolate(_request(4), read, REFUSED, now=0.0))


def test_reprobe_backoff_is_capped() -> None:
    delays = [isolate.reprobe_delay(n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == isolate.REPROBE_FIRST_S and delays[-1] == isolate.REPROBE_MAX_S
