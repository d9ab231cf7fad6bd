"""Simulated slaves: every configured device served over Modbus TCP (or RTU on a serial port /
pty) with plausible, changing values, and fault switches the tests use.

The register images live here; pymodbus only frames requests and answers. Values are
written through the project's own codec, so the simulator speaks exactly the byte and
word orders the config declares.

On an RTU line every unit id of the connection answers on the one port. Two extras serve
the RTU tests and benchmark: `SimUnit.faults` mangles a unit's next answers on the wire
(garbage before it, a bad CRC, a cut-off frame), and `Simulator.emulate_line` makes each
answer take the wire time the baud rate implies (a pty itself moves bytes instantly).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer, ModbusTlsServer

from .. import codec
from ..config.model import Config, Connection, Device, Register
from ..config.types import TYPES, Table
from ..errors import CodecError
from ..readings import Value
from .line import hold_until, sleep_nearly_until
from .port import write_at_once
from .wiretime import SERIAL_TYPES, exchange_time, frame_gap

log = logging.getLogger(__name__)

TABLE_SIZE = 65536
_FC_TABLE = {1: Table.COIL, 5: Table.COIL, 15: Table.COIL, 2: Table.DISCRETE, 4: Table.INPUT}
_FC_TABLE.update(dict.fromkeys((3, 6, 16, 22, 23), Table.HOLDING))

# (base, amplitude) by engineering unit: values an engineer would believe.
_PLAUSIBLE = {
    "v": (230.0, 3.0),
    "a": (12.0, 4.0),
    "hz": (50.0, 0.05),
    "w": (1500.0, 400.0),
    "kw": (1.5, 0.4),
    "var": (300.0, 80.0),
    "kvar": (0.3, 0.08),
    "%": (50.0, 20.0),
    "°c": (21.0, 2.0),
    "c": (21.0, 2.0),
    "bar": (4.0, 0.5),
}


@dataclass
class SimUnit:
    """One unit id's four tables plus its fault switches."""

    tables: dict[Table, list[int]] = field(
        default_factory=lambda: {t: [0] * TABLE_SIZE for t in Table}
    )
    illegal: set[tuple[Table, int]] = field(default_factory=set)
    silent: bool = False  # never answer: the client times out
    defined: dict[Table, set[int]] = field(default_factory=lambda: {t: set() for t in Table})
    strict: bool = False  # answer "illegal data address" for undefined addresses
    faults: list[str] = field(default_factory=list)  # next answers' fates: garbage, crc, partial


class Simulator:
    """The register images of every simulated device, keyed by (connection, unit id)."""

    def __init__(self, config: Config, changing: bool = True) -> None:
        self.config = config
        self.changing = changing
        self.units: dict[tuple[str, int], SimUnit] = {}
        self.pinned: dict[tuple[str, str], Value] = {}
        self.written: dict[tuple[str, str], bool] = {}
        self.started = time.monotonic()
        self.emulate_line = False  # RTU answers take their wire time at the baud rate
        # emulate_line, per connection: when the last request's bytes came in, and when
        # the answer to it may go out
        self.request_at: dict[str, float] = {}
        self.answer_at: dict[str, float] = {}
        self.serving: set[str] = set()  # connections whose server is up
        # When a list: every RTU frame in and out, as (connection, sending, bytes) (tests).
        self.line_log: list[tuple[str, bool, bytes]] | None = None
        for device in config.devices:
            unit = self.units.setdefault((device.connection, device.unit_id), SimUnit())
            for register in device.registers:
                for i in range(register.count):
                    unit.defined[register.table].add(register.address + i)
        self.refresh()

    def answer_configured_only(self) -> None:
        """Answer "illegal data address" outside what the config reads, as a real device
        does, so commissioning against the simulator meets the same errors. The bridge's
        merged reads (registers plus the gaps between them, see plan.py) still answer."""
        from ..plan import build_plan  # noqa: PLC0415

        for request in build_plan(self.config).requests:
            unit = self.units[(request.connection, request.unit_id)]
            unit.defined[request.table].update(range(request.address, request.end))
        for unit in self.units.values():
            unit.strict = True

    # -- values ----------------------------------------------------------------------

    def set_value(self, device: str, register: str, value: Value) -> None:
        """Pin a register to a value (tests), written through the codec."""
        self.pinned[(device, register)] = value
        dev = self.config.device(device)
        self._store(dev, next(r for r in dev.registers if r.name == register), value)

    def refresh(self) -> None:
        """Write every unpinned, unwritten register's current plausible value."""
        t = time.monotonic() - self.started
        for device in self.config.devices:
            for register in device.registers:
                key = (device.name, register.name)
                if key in self.pinned or key in self.written:
                    continue
                self._store(device, register, plausible(register, t if self.changing else 0.0))

    def _store(self, device: Device, register: Register, value: Value) -> None:
        table = self.units[(device.connection, device.unit_id)].tables[register.table]
        try:
            if register.bit is not None:
                word = table[register.address]
                table[register.address] = codec.encode_bit(bool(value), word, register.bit)
                return
            words = codec.encode(value, register)
        except CodecError:
            return
        table[register.address : register.address + len(words)] = [int(w) for w in words]

    def read_raw(self, device: str, register: str) -> list[int]:
        dev = self.config.device(device)
        reg = next(r for r in dev.registers if r.name == register)
        table = self.units[(dev.connection, dev.unit_id)].tables[reg.table]
        return table[reg.address : reg.address + reg.count]

    def value_of(self, device: str, register: str) -> Value:
        dev = self.config.device(device)
        reg = next(r for r in dev.registers if r.name == register)
        return codec.decode(self.read_raw(device, register), reg)

    def unit(self, device: str) -> SimUnit:
        dev = self.config.device(device)
        return self.units[(dev.connection, dev.unit_id)]

    def mark_written(self, connection: str, unit_id: int, table: Table, address: int) -> None:
        for device in self.config.devices:
            if device.connection != connection or device.unit_id != unit_id:
                continue
            for register in device.registers:
                if (
                    register.table is table
                    and register.address <= address < register.address + register.count
                ):
                    self.written[(device.name, register.name)] = True


def plausible(register: Register, t: float) -> Value:
    """A believable value for this register at time t (s): slow waves, counters, toggles."""
    phase = (zlib.crc32(register.name.encode()) % 1000) / 1000 * 2 * math.pi
    if register.type == "bool":
        return int(t / 10 + phase) % 2 == 1
    if register.type == "string":
        return "SIM-" + register.name[: max(0, (register.length or 1) * 2 - 4)]
    unit = (register.engineering_unit or "").lower()
    if unit in ("kwh", "wh", "mwh", "m3"):
        value = 1000.0 + t * 0.01 + phase
    else:
        base, amp = _PLAUSIBLE.get(unit, (100.0, 20.0))
        value = base + amp * math.sin(t / 20 + phase)
    return _fit(register, value)


def _fit(register: Register, value: float) -> Value:
    """Clamp to what the register can hold (its type range and min/max) after scaling."""
    info = TYPES[register.type]
    lo = register.min if register.min is not None else _eng(register, info.min_value)
    hi = register.max if register.max is not None else _eng(register, info.max_value)
    if lo is not None and hi is not None:
        value = min(max(value, min(lo, hi)), max(lo, hi))
    if info.is_integer and register.scale == 1 and register.offset == 0:
        return round(value)
    return value


def _eng(register: Register, raw: float | None) -> float | None:
    return None if raw is None else raw * register.scale + register.offset


class _Context(ModbusServerContext):
    """pymodbus calls these two coroutines for every request; they read our images."""

    def __init__(self, sim: Simulator, connection: str) -> None:  # no super(): its init logs
        self.sim = sim
        self.connection = connection
        self.old_simulator = True
        self.simdevices = []

    def _unit(self, device_id: int) -> SimUnit:
        unit = self.sim.units.get((self.connection, device_id))
        if unit is None or unit.silent:
            raise NoSuchIdException(f"no unit {device_id}")
        return unit

    async def _wire_time(self, table: Table, count: int) -> None:
        """Answer when a real line would have carried request and response (emulate_line).

        Counted from the request's arrival, not from now: pymodbus takes ~0.3 ms to get
        from the bytes to this call, time a real slave spends receiving, not after it.
        The loop sleeps most of it; the line's trace hook holds the answer for the rest
        just before pymodbus writes it (`_LineEnd`), so it leaves on time, not a loop turn
        or two late.
        """
        conn = self.sim.config.connection(self.connection)
        if self.sim.emulate_line and conn.type in SERIAL_TYPES:
            # The master keeps the gap after the answer itself: only one gap is ours.
            gap = frame_gap(conn)
            arrived = self.sim.request_at.get(self.connection, time.monotonic())
            answer_at = arrived + exchange_time(table, count, conn.baudrate, gap) - gap
            self.sim.answer_at[self.connection] = answer_at
            await sleep_nearly_until(answer_at)

    def device_ids(self) -> list[int]:
        return [u for (c, u) in self.sim.units if c == self.connection]

    async def async_getValues(  # noqa: N802  (pymodbus's name)
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        unit = self._unit(device_id)
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        await self._wire_time(table, count)
        if _refused(unit, table, range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        words = unit.tables[table][address : address + count]
        return [bool(w) for w in words] if table.is_bits else words

    async def async_setValues(  # noqa: N802
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        unit = self._unit(device_id)
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if _refused(unit, table, range(address, address + len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        unit.tables[table][address : address + len(values)] = [int(v) for v in values]
        for offset in range(len(values)):
            self.sim.mark_written(self.connection, device_id, table, address + offset)
        return None


def _refused(unit: SimUnit, table: Table, addresses: range) -> bool:
    if addresses.stop > TABLE_SIZE:
        return True
    if unit.illegal and any((table, a) in unit.illegal for a in addresses):
        return True
    return unit.strict and any(a not in unit.defined[table] for a in addresses)


def make_server(
    sim: Simulator,
    conn: Connection,
    host: str = "127.0.0.1",
    port: int | str | None = None,
    sslctx: ssl.SSLContext | None = None,
) -> ModbusTcpServer | ModbusSerialServer:
    """A server for one connection; for rtu, `port` is the serial device or pty to serve on.

    With `sslctx` (a tcp connection) it is a Modbus/TCP Security server (pymodbus's TLS
    server, MBAP over TLS) with that context's certificate and client verification.
    """
    context = _Context(sim, conn.name)
    if sslctx is not None:
        address = (host, int(port or conn.port or 802))
        return ModbusTlsServer(context, address=address, sslctx=sslctx, ignore_missing_devices=True)
    trace = _LineEnd(sim, conn.name) if conn.type in SERIAL_TYPES else None
    if conn.type == "rtu":
        assert trace is not None
        trace.server = ModbusSerialServer(
            context,
            framer=FramerType.RTU,
            port=str(port or conn.port),
            baudrate=conn.baudrate,
            parity=conn.parity,
            stopbits=conn.stopbits,
            bytesize=conn.bytesize,
            ignore_missing_devices=True,
            reconnect_delay=0.2,
            trace_packet=trace,
        )
        return trace.server
    framer = FramerType.RTU if conn.type == "rtu-over-tcp" else FramerType.SOCKET
    return ModbusTcpServer(
        context,
        framer=framer,
        address=(host, int(port or conn.port or 502)),
        ignore_missing_devices=True,
        trace_packet=trace,
    )


class _LineEnd:
    """The simulator's end of a line, as pymodbus's trace hook: it logs frames, applies a
    unit's pending `faults` to its outgoing answers and, under emulate_line, times them."""

    def __init__(self, sim: Simulator, connection: str) -> None:
        self.sim = sim
        self.connection = connection
        self.server: ModbusSerialServer | None = None  # rtu: its transports write at once

    def __call__(self, sending: bool, packet: bytes) -> bytes:
        sim = self.sim
        if sim.line_log is not None:
            sim.line_log.append((self.connection, sending, bytes(packet)))
        if not sending:
            sim.request_at[self.connection] = time.monotonic()  # the last bytes came in
        elif sim.emulate_line:
            hold_until(sim.answer_at.pop(self.connection, 0.0))
            if self.server is not None:  # a reopened port has a new transport
                for handler in self.server.active_connections.values():
                    write_at_once(handler.transport)
        unit = sim.units.get((self.connection, packet[0])) if sending and packet else None
        if unit is None or not unit.faults:
            return packet
        return mangle(packet, unit.faults.pop(0))


def mangle(frame: bytes, fault: str) -> bytes:
    """The frame as line trouble would deliver it."""
    if fault == "garbage":  # noise before the answer; 0xAA after 0x00 even looks like a frame
        return b"\xff\x00\xaa\x55\x13" + frame
    if fault == "crc":
        return frame[:-1] + bytes([frame[-1] ^ 0xFF])
    if fault == "partial":
        return frame[: max(1, len(frame) // 2)]
    raise ValueError(f"unknown line fault {fault!r}")


async def serve(
    config: Config,
    stop: asyncio.Event,
    *,
    host: str = "127.0.0.1",
    refresh_s: float = 1.0,
    sim: Simulator | None = None,
    serial: Mapping[str, str] | None = None,
) -> None:
    """Serve every connection of the config until stop; values change every refresh_s.

    `serial` maps an rtu connection's name to the port to serve it on: the configured port
    is the bridge's end of the line, the simulator sits on the other end (of a pty pair).
    """
    sim = sim or Simulator(config)
    serial = serial or {}
    servers: list[ModbusTcpServer | ModbusSerialServer] = []
    try:
        for conn in config.connections:
            where = serial.get(conn.name, str(conn.port)) if conn.type == "rtu" else None
            server = make_server(sim, conn, host, where)
            servers.append(server)
            await server.serve_forever(background=True)  # listening (or raising) on return
            sim.serving.add(conn.name)
            _log_serving(config, conn, where or f"{host}:{conn.port}")
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), refresh_s)
            except TimeoutError:
                sim.refresh()
    finally:
        sim.serving.clear()
        for server in servers:
            await server.shutdown()  # type: ignore[no-untyped-call]


def _log_serving(config: Config, conn: Connection, where: str | int | None) -> None:
    units = sorted({d.unit_id for d in config.devices if d.connection == conn.name})
    log.info("simulating %s (%s) on %s, unit ids %s", conn.name, conn.type, where, units)
