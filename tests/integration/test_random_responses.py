"""Random bytes as a Modbus TCP answer: the port raises one of our errors, never anything else."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.model import Connection
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.errors import ModbusError
from modbus_mqtt_bridge.modbus.port import ModbusPort


def _mbap_framed(body: bytes, tid: int) -> bytes:
    """A plausible MBAP header around random PDU bytes, so the framer gets past the header."""
    return struct.pack(">HHHB", tid, 0, len(body) + 1, 1) + body


async def _exchange(answer: bytes, framed: bool) -> None:
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.read(260):
                tid = struct.unpack(">H", request[:2])[0] if len(request) >= 2 else 0
                writer.write(_mbap_framed(answer, tid) if framed else answer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            await writer.wait_closed()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await serve(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = Connection("fuzz", "tcp", "127.0.0.1", port, timeout_s=0.2)
    modbus = ModbusPort(conn)
    try:
        await modbus.connect()
        for table in (Table.HOLDING, Table.COIL):
            # the point: a value, or a precise error of ours, nothing else
            with contextlib.suppress(ModbusError):
                await modbus.read(table, 0, 4, unit_id=1)
    finally:
        modbus.close()
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=st.binary(min_size=0, max_size=40), framed=st.booleans())
def test_random_answers_give_a_modbus_error_or_a_value(answer: bytes, framed: bool) -> None:
    asyncio.run(_exchange(answer, framed))
