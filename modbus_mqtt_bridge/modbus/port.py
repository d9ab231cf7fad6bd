"""The only module that imports pymodbus: one Modbus client per connection, errors made ours.

pymodbus's own retries and auto-reconnect are switched off: the worker owns the retry
and backoff policy, so a dead device costs exactly one timeout, visibly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from ..config.model import Connection
from ..config.types import Table
from ..errors import (
    ModbusBadResponse,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusTimeout,
)

# pymodbus logs every timeout at error level; the worker reports transitions instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusPort:
    """A Modbus client for one connection; every call raises ModbusError on failure."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient = _make_client(conn)

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.conn.timeout_s + 1)
        except (TimeoutError, OSError) as exc:
            raise ModbusConnectionError(f"cannot connect to {describe(self.conn)}: {exc}") from exc
        if not ok:
            raise ModbusConnectionError(f"cannot connect to {describe(self.conn)}")

    def close(self) -> None:
        self._client.close()

    async def read(self, table: Table, address: int, count: int, unit_id: int) -> list[int]:
        """Raw registers (or bits as 0/1) of one request."""
        fn = {
            Table.HOLDING: self._client.read_holding_registers,
            Table.INPUT: self._client.read_input_registers,
            Table.COIL: self._client.read_coils,
            Table.DISCRETE: self._client.read_discrete_inputs,
        }[table]
        response = await self._call(fn, address, count=count, device_id=unit_id)
        if table.is_bits:
            bits = list(response.bits)
            if len(bits) < count:
                raise ModbusBadResponse(f"asked for {count} bits, got {len(bits)}")
            return [int(b) for b in bits[:count]]
        registers = list(response.registers)
        if len(registers) != count:
            raise ModbusBadResponse(f"asked for {count} registers, got {len(registers)}")
        return registers

    async def write_registers(
        self, address: int, values: Sequence[int], unit_id: int, *, force_fc16: bool = False
    ) -> None:
        if len(values) == 1 and not force_fc16:
            await self._call(self._client.write_register, address, values[0], device_id=unit_id)
        else:
            await self._call(self._client.write_registers, address, list(values), device_id=unit_id)

    async def write_coils(self, address: int, values: Sequence[bool], unit_id: int) -> None:
        if len(values) == 1:
            await self._call(self._client.write_coil, address, values[0], device_id=unit_id)
        else:
            await self._call(self._client.write_coils, address, list(values), device_id=unit_id)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._client.connected:
            raise ModbusConnectionError(f"not connected to {describe(self.conn)}")
        try:
            response = await asyncio.wait_for(fn(*args, **kwargs), self.conn.timeout_s + 1)
        except ConnectionException as exc:
            raise ModbusConnectionError(f"connection to {describe(self.conn)} lost") from exc
        except ModbusIOException as exc:
            raise _io_error(str(exc)) from exc
        except TimeoutError as exc:
            raise ModbusTimeout(f"no answer within {self.conn.timeout_s:g}s") from exc
        except ModbusException as exc:
            raise ModbusBadResponse(str(exc)) from exc
        if isinstance(response, ExceptionResponse) or response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusExceptionResponse(code, f"exception {code} ({name})")
        return response


def _io_error(text: str) -> ModbusError:
    if "No response received" in text:
        return ModbusTimeout("no answer")
    if "transaction id" in text or "device id" in text:
        return ModbusBadResponse(text.split("ERROR: ", 1)[-1].split(", function", maxsplit=1)[0])
    return ModbusBadResponse(text)


def _make_client(conn: Connection) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    common: dict[str, Any] = {"timeout": conn.timeout_s, "retries": 0, "reconnect_delay": 0}
    if conn.type == "rtu":
        return AsyncModbusSerialClient(
            str(conn.port),
            framer=FramerType.RTU,
            baudrate=conn.baudrate,
            parity=conn.parity,
            stopbits=conn.stopbits,
            bytesize=conn.bytesize,
            **common,
        )
    framer = FramerType.RTU if conn.type == "rtu-over-tcp" else FramerType.SOCKET
    return AsyncModbusTcpClient(str(conn.host), port=int(conn.port or 502), framer=framer, **common)


def describe(conn: Connection) -> str:
    if conn.type == "rtu":
        return (
            f"{conn.name} ({conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits})"
        )
    return f"{conn.name} ({conn.host}:{conn.port or 502})"
