"""The only module that imports pymodbus: one Modbus client per connection, errors made ours.

pymodbus's own retries and auto-reconnect are switched off: the worker owns the retry
and backoff policy, so a dead device costs exactly one timeout, visibly.

On an RTU line (`rtu`, `rtu-over-tcp`) the port also keeps the line discipline (see
line.py): the inter-frame silence, a device's turnaround after writes, settling and
flushing after a failed exchange, and naming frame errors (frames.py) for the worker.

Only reads are ever asked twice. A write is sent exactly once, whatever became of its
answer: a mangled acknowledgement says nothing about whether the device applied it, and
sending it again could apply it twice (a pulse, a toggle, a counter reset). The caller
reads the register back instead (writes/execute.py, SPEC 3).

A serial port is the bridge's alone: pymodbus 3.16 opens it with pyserial's
`exclusive=True` (an flock on POSIX; Windows opens COM ports exclusively anyway), and a
second opener (the `read`/`write` commands, another bridge) is told the port is in use.
A `tls` connection speaks Modbus/TCP Security with the certificate always verified; a
failed handshake is a failed connect, never a plaintext retry.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import struct
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, AsyncModbusTlsClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from ..config.model import Connection, ModbusTls
from ..config.types import Table
from ..errors import (
    ModbusBadResponse,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusTimeout,
)
from .frames import classify
from .line import Line
from .wiretime import MAX_FRAME_BYTES, SERIAL_TYPES, frame_gap, frame_time

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
# A frame mangled on the line is noise, not a dead device: such a read is asked once more.
NOISE_KINDS = frozenset({"crc", "partial", "garbage"})
SETTLE_MAX_S = 0.1  # after a failure, wait for a straggling answer at most this long
_READ_FC = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}

FrameErrorHook = Callable[[str, str], None]  # (kind, detail)
Client = AsyncModbusTcpClient | AsyncModbusSerialClient
# How an open serial port held by another process fails: pyserial's flock on POSIX (EAGAIN
# or EWOULDBLOCK), TIOCEXCL (EBUSY), Windows' always-exclusive open ("Access is denied").
_IN_USE_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY})
_IN_USE_TEXTS = ("exclusively lock", "Access is denied", "Resource busy")


class ModbusPort:
    """A Modbus client for one connection; every call raises ModbusError on failure."""

    def __init__(self, conn: Connection, on_frame_error: FrameErrorHook | None = None) -> None:
        self.conn = conn
        self.on_frame_error = on_frame_error
        self.turnaround_s: dict[int, float] = {}  # unit id -> silence after a write to it
        self.line: Line | None = None
        if conn.type in SERIAL_TYPES:
            settle = min(SETTLE_MAX_S, frame_time(MAX_FRAME_BYTES, conn.baudrate))
            self.line = Line(frame_gap(conn), settle)
        # Made on first connect: pymodbus clients need the running loop (the worker's).
        self._made: Client | None = None
        self._connect_errors: list[OSError] = []  # why pymodbus's last connect failed

    @property
    def connected(self) -> bool:
        return self._made is not None and bool(self._made.connected)

    @property
    def _client(self) -> Client:
        if self._made is None:
            raise ModbusConnectionError(f"not connected to {describe(self.conn)}")
        return self._made

    async def connect(self) -> None:
        self._connect_errors.clear()
        try:
            if self._made is None:
                client = _make_client(self.conn, self.line.trace if self.line else None)
                _watch_connect(client, self._connect_errors, _server_name(self.conn))
                self._made = client
            ok = await asyncio.wait_for(self._made.connect(), self.conn.timeout_s + 1)
        except (TimeoutError, OSError) as exc:
            raise ModbusConnectionError(f"cannot connect to {describe(self.conn)}: {exc}") from exc
        if not ok:
            raise ModbusConnectionError(self._connect_failure())
        if self.conn.type == "rtu":
            write_at_once(self._made.ctx.transport)

    def _connect_failure(self) -> str:
        """One line on why the link did not come up: in use, TLS refused, or the OS's word."""
        exc = self._connect_errors[-1] if self._connect_errors else None
        if exc is None:  # pymodbus only said False: ask the OS about the serial device
            return f"cannot connect to {describe(self.conn)}{_serial_trouble(self.conn)}"
        if self.conn.type == "rtu" and _in_use(exc):
            return (
                f"serial port {self.conn.port} is in use, probably by the running bridge: "
                "use its MQTT command topic ({site}/{device}/{register}/set) instead"
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed: {exc.verify_message}"
            return f"cannot connect to {describe(self.conn)}: TLS handshake failed: {reason}"
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or str(exc)
            return f"cannot connect to {describe(self.conn)}: TLS handshake failed: {reason}"
        why = _serial_trouble(self.conn) or f": {exc.strerror or exc}"
        return f"cannot connect to {describe(self.conn)}{why}"

    def close(self) -> None:
        if self._made is not None:
            self._made.close()

    async def read(self, table: Table, address: int, count: int, unit_id: int) -> list[int]:
        """Raw registers (or bits as 0/1) of one request."""
        fn = {
            Table.HOLDING: self._client.read_holding_registers,
            Table.INPUT: self._client.read_input_registers,
            Table.COIL: self._client.read_coils,
            Table.DISCRETE: self._client.read_discrete_inputs,
        }[table]
        call = partial(fn, address, count=count, device_id=unit_id)
        response = await self._call(_READ_FC[table], unit_id, call, again_on_noise=True)
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
        quiet = self._turnaround(unit_id)
        if len(values) == 1 and not force_fc16:
            call = partial(self._client.write_register, address, values[0], **quiet.kwargs)
            await self._call(6, unit_id, call, quiet.hold_s)
        else:
            call = partial(self._client.write_registers, address, list(values), **quiet.kwargs)
            await self._call(16, unit_id, call, quiet.hold_s)

    async def mask_write_register(
        self, address: int, and_mask: int, or_mask: int, unit_id: int
    ) -> None:
        """FC22: the device applies (current AND and_mask) OR (or_mask & ~and_mask) itself."""
        quiet = self._turnaround(unit_id)
        call = partial(
            self._client.mask_write_register,
            address=address,
            and_mask=and_mask,
            or_mask=or_mask,
            **quiet.kwargs,
        )
        await self._call(22, unit_id, call, quiet.hold_s)

    async def write_coils(self, address: int, values: Sequence[bool], unit_id: int) -> None:
        quiet = self._turnaround(unit_id)
        if len(values) == 1:
            call = partial(self._client.write_coil, address, values[0], **quiet.kwargs)
            await self._call(5, unit_id, call, quiet.hold_s)
        else:
            call = partial(self._client.write_coils, address, list(values), **quiet.kwargs)
            await self._call(15, unit_id, call, quiet.hold_s)

    def _turnaround(self, unit_id: int) -> _Write:
        """Unit 0 is a broadcast: nobody answers, every device gets the longest turnaround."""
        if unit_id == 0:
            hold = max(self.turnaround_s.values(), default=0.0)
            return _Write(hold, {"device_id": 0, "no_response_expected": True})
        return _Write(self.turnaround_s.get(unit_id, 0.0), {"device_id": unit_id})

    async def _call(
        self,
        function_code: int,
        unit_id: int,
        call: Callable[[], Awaitable[Any]],
        hold_s: float = 0.0,
        *,
        again_on_noise: bool = False,
    ) -> Any:
        """One exchange; `again_on_noise` (reads only) asks once more after line noise."""
        if self.line is None:
            return await self._request(call)
        try:
            return await self._exchange(self.line, function_code, unit_id, call, hold_s)
        except (ModbusTimeout, ModbusBadResponse) as exc:
            if not again_on_noise or not isinstance(exc.__cause__, _Noise):
                raise
            # The unit did answer and the line mangled it: ask once more, after the line
            # settled, rather than call a live device offline. Harmless for a read only.
            return await self._exchange(self.line, function_code, unit_id, call, hold_s)

    async def _exchange(
        self,
        line: Line,
        function_code: int,
        unit_id: int,
        call: Callable[[], Awaitable[Any]],
        hold_s: float,
    ) -> Any:
        """One request on an RTU line, in its turn, with what the line did to it counted."""
        await line.wait_turn()
        self._flush(line)
        try:
            response = await self._request(call)
        except ModbusExceptionResponse:
            self._report(line, unit_id, function_code)
            line.close_exchange(failed=False, hold_s=hold_s)  # a proper answer, the line is fine
            raise
        except (ModbusTimeout, ModbusBadResponse) as exc:
            kinds = self._report(line, unit_id, function_code)
            line.close_exchange(failed=True, hold_s=hold_s)
            if NOISE_KINDS.intersection(kinds):
                raise type(exc)(f"{exc}; line noise: {', '.join(kinds)}") from _Noise()
            raise
        except ModbusError:
            line.close_exchange(failed=True, hold_s=hold_s)
            raise
        self._report(line, unit_id, function_code)
        line.close_exchange(failed=False, hold_s=hold_s)
        return response

    def _report(self, line: Line, unit_id: int, function_code: int) -> tuple[str, ...]:
        kinds = classify(bytes(line.rx), unit_id, function_code)
        for kind in kinds:
            self._frame_error(kind, f"unit {unit_id} FC{function_code}: {line.rx.hex(' ')}")
        return kinds

    def _flush(self, line: Line) -> None:
        """Drop what arrived since the last exchange, so a late answer cannot pose as the next."""
        if stray := line.take_stray():
            self._frame_error("late", f"{stray} byte(s) between exchanges")
        if not line.dirty:
            return
        line.dirty = False
        transport = self._client.ctx.transport
        serial_port = getattr(transport, "sync_serial", None)
        if serial_port is not None:
            serial_port.reset_input_buffer()
        self._client.ctx.recv_buffer = b""

    def _frame_error(self, kind: str, detail: str) -> None:
        if self.on_frame_error is not None:
            self.on_frame_error(kind, detail)

    async def _request(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if not self.connected:
            raise ModbusConnectionError(f"not connected to {describe(self.conn)}")
        try:
            # asyncio.timeout, not wait_for: no extra Task per request (about half the cost)
            async with asyncio.timeout(self.conn.timeout_s + 1):
                response = await call()
        except ConnectionException as exc:
            raise ModbusConnectionError(f"connection to {describe(self.conn)} lost") from exc
        except ModbusIOException as exc:
            raise _io_error(str(exc)) from exc
        except TimeoutError as exc:
            raise ModbusTimeout(f"no answer within {self.conn.timeout_s:g}s") from exc
        except ModbusException as exc:
            raise ModbusBadResponse(str(exc)) from exc
        if response is None:  # a broadcast: no answer expected
            return None
        if isinstance(response, ExceptionResponse) or response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusExceptionResponse(code, f"exception {code} ({name})")
        return response


class _Noise(Exception):  # a marker cause, never raised to callers
    """Marks a failed exchange whose bytes showed line noise (see `_call`)."""


class _Write:
    """How a write is sent: pymodbus keyword arguments and the silence that follows it."""

    def __init__(self, hold_s: float, kwargs: dict[str, Any]) -> None:
        self.hold_s = hold_s
        self.kwargs = kwargs


def _io_error(text: str) -> ModbusError:
    if "No response received" in text:
        return ModbusTimeout("no answer")
    if "transaction id" in text or "device id" in text:
        return ModbusBadResponse(text.split("ERROR: ", 1)[-1].split(", function", maxsplit=1)[0])
    return ModbusBadResponse(text)


def write_at_once(transport: Any) -> None:
    """Have pymodbus's serial transport write a frame when handed it, not a loop turn later.

    Its `write` only queues the frame and asks the loop to call back once the port is
    writable (`add_writer`): one more loop iteration, ~0.1-0.2 ms, after the inter-frame
    silence on every exchange. The port is non-blocking (pyserial opens it O_NONBLOCK),
    so writing at once never waits; whatever it does not take (a full output buffer)
    goes to the queue as before, and so does everything while the queue is not empty,
    so frames keep their order. os.write, not pyserial's write: that one spins on EAGAIN.
    """
    if getattr(transport, "force_poll", True) or not hasattr(transport, "intern_write_buffer"):
        return  # not the transport this was written for (or Windows' polling mode)
    if getattr(transport.write, "at_once", False):
        return
    fd = transport.sync_serial.fileno()
    queue = transport.write

    def write(data: bytes) -> None:
        if transport.intern_write_buffer:
            queue(data)
            return
        try:
            sent = os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:  # the port went away (EIO): as pymodbus's own write does
            transport.close(exc=exc)
            return
        if sent < len(data):
            queue(data[sent:])

    write.at_once = True  # type: ignore[attr-defined]
    transport.write = write


def _in_use(exc: OSError) -> bool:
    return exc.errno in _IN_USE_ERRNOS or any(text in str(exc) for text in _IN_USE_TEXTS)


def _server_name(conn: Connection) -> str | None:
    return conn.tls.server_hostname if conn.tls is not None else None


def _watch_connect(client: Client, errors: list[OSError], server_hostname: str | None) -> None:
    """Keep why a connect fails (pymodbus only logs it, at a level we silence), and verify
    a TLS certificate against `server_hostname` when it differs from the host."""
    ctx = client.ctx
    create = ctx.call_create
    if server_hostname is not None:
        # pymodbus passes no server_hostname, so asyncio checks the certificate against host
        if not isinstance(create, partial) or "ssl" not in create.keywords:
            raise ModbusConnectionError("this pymodbus cannot set the TLS server name")
        keywords = {**create.keywords, "server_hostname": server_hostname}
        create = partial(create.func, *create.args, **keywords)
    uses_tls = isinstance(create, partial) and create.keywords.get("ssl") is not None

    async def call_create() -> Any:
        try:
            return await create()
        except OSError as exc:  # serial.SerialException and ssl.SSLError are OSErrors
            errors.append(exc)
            raise
        except asyncio.CancelledError:  # pymodbus's connect timeout
            hint = " (no TLS handshake: is the device a TLS server?)" if uses_tls else ""
            errors.append(TimeoutError(errno.ETIMEDOUT, f"timed out{hint}"))
            raise

    ctx.call_create = call_create


def _ssl_context(conn: Connection, tls: ModbusTls) -> ssl.SSLContext:
    """Verification is always on: the CA checks the device's certificate and its name.

    Nothing here can turn it off, and a failed handshake is a failed connect: never a
    plaintext fallback (SPEC 2).
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ValueError) as exc:  # missing file, bad PEM, key not matching
        raise ModbusConnectionError(
            f"connection {conn.name}: cannot load its TLS files: {exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # Modbus/TCP Security's floor
    return context


def _make_client(conn: Connection, trace: Callable[[bool, bytes], bytes] | None) -> Client:
    common: dict[str, Any] = {
        "timeout": conn.timeout_s,
        "retries": 0,
        "reconnect_delay": 0,
        "trace_packet": trace,
    }
    client: Client
    if conn.tls is not None:
        context = _ssl_context(conn, conn.tls)
        port = int(conn.port or 802)
        client = AsyncModbusTlsClient(str(conn.host), sslctx=context, port=port, **common)
    elif conn.type == "rtu":
        client = AsyncModbusSerialClient(
            str(conn.port),
            framer=FramerType.RTU,
            baudrate=conn.baudrate,
            parity=conn.parity,
            stopbits=conn.stopbits,
            bytesize=conn.bytesize,
            **common,
        )
    else:
        framer = FramerType.RTU if conn.type == "rtu-over-tcp" else FramerType.SOCKET
        host, port = str(conn.host), int(conn.port or 502)
        client = AsyncModbusTcpClient(host, port=port, framer=framer, **common)
    for response in FAST_RESPONSES:  # one struct call per register response (below)
        client.register(response)
    if conn.type == "rtu-over-tcp":
        # pymodbus drops a TCP link after a few unanswered requests in a row; behind an RTU
        # gateway those are one silent slave's timeouts, not a broken link.
        client.set_max_no_responses(sys.maxsize)
    return client


def _serial_trouble(conn: Connection) -> str:
    """': <OS reason>' for a serial port that cannot be opened; pymodbus only says False."""
    path = str(conn.port or "")
    if conn.type != "rtu" or sys.platform == "win32" or "://" in path:
        return ""
    if not Path(path).exists():
        return f": {path}: no such file (adapter unplugged? see ls /dev/serial/by-id/)"
    if not os.access(path, os.R_OK | os.W_OK):
        return (
            f": {path}: permission denied (add the user to the dialout group: "
            "sudo usermod -aG dialout $USER, then log in again)"
        )
    return ""


def describe(conn: Connection) -> str:
    if conn.type == "rtu":
        return (
            f"{conn.name} ({conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits})"
        )
    kind = ", rtu over tcp" if conn.type == "rtu-over-tcp" else ", tls" if conn.tls else ""
    return f"{conn.name} ({conn.host}:{conn.port or 502}{kind})"


# -- register responses in one struct call ---------------------------------------------
# pymodbus 3.x decodes a register response with one struct.unpack per register, then
# renders the whole PDU as text for a debug line even with debug logging off (the argument
# is built before the call): at 100 registers, a large share of a request's client CPU.
# These subclasses give the same registers and errors (tests/unit/test_modbus_responses.py
# holds them to pymodbus's own classes); the text is the full one whenever pymodbus's debug
# logging is on. `_make_client` registers them on each client (pymodbus's public hook for
# response classes), so nothing global changes.

_PYMODBUS_LOG = logging.getLogger("pymodbus.logging")  # pymodbus's Log._logger


class _OneStructCall(ModbusPDU):
    def decode(self, data: bytes) -> None:
        """As pymodbus: a byte count, then big-endian 16-bit words (an odd count drops its
        last byte); a count beyond the data is an IO error."""
        if (data_len := int(data[0])) >= len(data):
            raise ModbusIOException(
                f"byte_count {data_len} > length of packet {len(data)}",
                function_code=self.function_code,
            )
        self.registers = list(struct.unpack_from(f">{data_len // 2}H", data, 1))

    def __str__(self) -> str:
        if _PYMODBUS_LOG.isEnabledFor(logging.DEBUG):
            return super().__str__()
        return type(self).__name__


class HoldingRegisters(_OneStructCall, ReadHoldingRegistersResponse):
    pass


class InputRegisters(_OneStructCall, ReadInputRegistersResponse):
    pass


FAST_RESPONSES: tuple[type[ModbusPDU], ...] = (HoldingRegisters, InputRegisters)
