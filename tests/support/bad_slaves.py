"""Misbehaving Modbus TCP slaves: one that answers garbage, one that hangs up on every request,
one that answers slowly."""

from __future__ import annotations

import asyncio
import os

from tests.support.ports import port_open, wait_until
from tests.support.threads import LoopThread


class BadSlave:
    """mode "garbage": random bytes for every request; "close": drop the connection."""

    def __init__(self, port: int, mode: str) -> None:
        self.port = port
        self.mode = mode
        self.requests = 0
        self.runner = LoopThread(self._main, f"bad-slave-{mode}")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(260):
                self.requests += 1
                if self.mode == "close":
                    break
                writer.write(os.urandom(9 + self.requests % 20))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _main(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        async with server:
            await stop.wait()

    def start(self) -> BadSlave:
        self.runner.start()
        return self

    def stop(self) -> None:
        self.runner.stop()


class SlowSlave:
    """A real slave (e.g. the simulator on `upstream_port`) that answers every request only
    after `delay_s`: a proxy that holds each Modbus TCP request that long before passing it
    on. `requests` records each request's (function code, address) in arrival order."""

    def __init__(self, port: int, upstream_port: int, delay_s: float) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.requests: list[tuple[int, int]] = []
        self.runner = LoopThread(self._main, "slow-slave")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            while True:
                request = await _mbap_frame(reader)
                self.requests.append((request[7], int.from_bytes(request[8:10], "big")))
                await asyncio.sleep(self.delay_s)
                up_writer.write(request)
                await up_writer.drain()
                writer.write(await _mbap_frame(up_reader))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            writer.close()

    async def _main(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        async with server:
            await stop.wait()

    def start(self) -> SlowSlave:
        self.runner.start()
        wait_until(lambda: port_open(self.port), 10, "the slow slave to listen")
        return self

    def stop(self) -> None:
        self.runner.stop()


async def _mbap_frame(reader: asyncio.StreamReader) -> bytes:
    """One Modbus TCP frame: the 7-byte MBAP header, then `length - 1` bytes of PDU."""
    header = await reader.readexactly(7)
    length = int.from_bytes(header[4:6], "big")
    return header + await reader.readexactly(length - 1)
