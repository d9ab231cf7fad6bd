"""Misbehaving Modbus TCP slaves: one that answers garbage, one that hangs up on every request."""

from __future__ import annotations

import asyncio
import os

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
