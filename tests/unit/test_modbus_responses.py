"""The one-struct-call register responses decode exactly as pymodbus's own classes."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from modbus_mqtt_bridge.modbus.port import HoldingRegisters, InputRegisters

PAIRS = [
    (HoldingRegisters, ReadHoldingRegistersResponse),
    (InputRegisters, ReadInputRegistersResponse),
]


@pytest.mark.parametrize(("fast", "theirs"), PAIRS)
def test_same_registers_for_every_byte_count(fast: type, theirs: type) -> None:
    rng = random.Random(7)
    for byte_count in range(256):
        body = bytes(rng.randrange(256) for _ in range(byte_count + rng.randrange(3) + 1))
        data = bytes((byte_count,)) + body
        mine, reference = fast(), theirs()
        mine.decode(data)
        reference.decode(data)
        assert mine.registers == reference.registers, byte_count
        assert mine.function_code == reference.function_code


@pytest.mark.parametrize(("fast", "theirs"), PAIRS)
def test_a_byte_count_beyond_the_data_is_the_same_io_error(fast: type, theirs: type) -> None:
    data = bytes((10, 0, 1, 0, 2))
    with pytest.raises(ModbusIOException) as reference:
        theirs().decode(data)
    with pytest.raises(ModbusIOException) as mine:
        fast().decode(data)
    assert str(mine.value) == str(reference.value)


def test_the_text_is_short_unless_pymodbus_debugs(caplog: pytest.LogCaptureFixture) -> None:
    pdu = HoldingRegisters()
    pdu.decode(bytes((4, 0, 1, 0, 2)))
    assert str(pdu) == "HoldingRegisters"
    with caplog.at_level(logging.DEBUG, logger="pymodbus.logging"):
        assert "registers=[1, 2]" in str(pdu)


@pytest.mark.parametrize("kind", ["tcp", "rtu-over-tcp", "rtu"])
def test_every_client_the_port_makes_decodes_with_them(kind: str) -> None:
    from modbus_mqtt_bridge.config.model import Connection
    from modbus_mqtt_bridge.modbus.port import _make_client

    if kind == "rtu":
        conn = Connection(name="bus", type="rtu", port="/dev/ttyUSB9")
    else:
        conn = Connection(name="lan", type=kind, host="127.0.0.1", port=1502)

    async def make() -> Any:
        return _make_client(conn, None)  # pymodbus's clients want a running loop

    decoder = asyncio.run(make()).ctx.framer.decoder
    assert decoder.decode(bytes((3, 2, 0, 7))).__class__ is HoldingRegisters
    assert decoder.decode(bytes((4, 2, 0, 7))).__class__ is InputRegisters
