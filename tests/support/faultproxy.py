"""A TCP fault proxy for tests: put it between a client and a server, switch faults at runtime.

    with FaultProxy(broker.port) as proxy:        # listens on proxy.port (loopback)
        config = ... mqtt://127.0.0.1:{proxy.port} ...
        proxy.blackhole()                         # sockets stay open, nothing gets through
        proxy.pass_through()                      # held bytes are delivered, traffic flows

Works for any TCP protocol: bridge <-> Mosquitto, bridge <-> a Modbus TCP slave.

Modes (each applies to existing and new connections unless said otherwise):

- `pass_through()`: forward both ways.
- `blackhole()`: accept and keep every socket open, forward nothing either way. Bytes are
  held, not dropped, as TCP would retransmit them: when the mode goes back to pass they are
  delivered in order. A side that closes while blackholed takes its held bytes with it
  (its peer is reset), the way a connection given up behind a dead route never arrives.
- `delay(seconds)`: every chunk is delivered `seconds` after it arrived (latency, order
  kept).
- `reset()`: every open connection is reset (RST both ways) now; new connections are
  reset as soon as they are accepted, until the mode changes.
- `close_after_first_reply(times=None)`: on each new connection, forward the client's
  bytes and the server's first reply (an MQTT CONNACK, a Modbus answer), then close both
  sides. With `times`, only the next `times` connections; later ones pass.

`connections` counts accepted connections; `open_connections()` those still open.
Thread-safe: the proxy runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.ports import free_port

PASS, BLACKHOLE, DELAY, RESET, CLOSE_AFTER_FIRST_REPLY = (
    "pass",
    "blackhole",
    "delay",
    "reset",
    "close-after-first-reply",
)


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    hang_up_after_reply: bool
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = PASS
        self.delay_s = 0.0
        self.connections = 0
        self._hang_ups_left: int | None = None
        self._links: set[_Link] = set()
        self._changed: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    # -- the API --------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("fault proxy did not start")
        return self

    def pass_through(self) -> None:
        self._set(PASS)

    def blackhole(self) -> None:
        self._set(BLACKHOLE)

    def delay(self, seconds: float) -> None:
        self._set(DELAY, delay_s=seconds)

    def reset(self) -> None:
        self._set(RESET)

    def close_after_first_reply(self, times: int | None = None) -> None:
        self._set(CLOSE_AFTER_FIRST_REPLY, hang_ups=times)

    def open_connections(self) -> int:
        return int(self._call(lambda: sum(1 for link in self._links if not link.closed)))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._loop.create_task, self._shutdown())
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- inside the proxy's loop ------------------------------------------------------

    def _set(self, mode: str, *, delay_s: float = 0.0, hang_ups: int | None = None) -> None:
        def apply() -> None:
            self.mode, self.delay_s, self._hang_ups_left = mode, delay_s, hang_ups
            if mode == RESET:
                for link in list(self._links):
                    self._close(link, reset=True)
            assert self._changed is not None
            self._changed.set()  # wake every pump to look at the new mode
            self._changed = asyncio.Event()

        self._call(apply)

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self._ready.set()
        await self._stopped.wait()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for link in self._links for t in link.tasks]
        for link in list(self._links):
            self._close(link, reset=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the transports finish closing before the loop does
        self._stopped.set()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == RESET:
            _reset(c_writer)
            return
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(c_writer)
            return
        hang_up = self.mode == CLOSE_AFTER_FIRST_REPLY
        if hang_up and self._hang_ups_left is not None:
            self._hang_ups_left -= 1
            if self._hang_ups_left <= 0:
                self.mode = PASS  # this one still hangs up; the next ones pass
        link = _Link(c_writer, s_writer, hang_up)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(link, c_reader, s_writer, upstream=True)),
            asyncio.create_task(self._pump(link, s_reader, c_writer, upstream=False)),
        ]

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        """One direction: read at once (the sender never blocks), deliver per the mode."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(link, queue, writer, upstream=upstream))
        try:
            while not link.closed:
                try:
                    data = await reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    break
                queue.put_nowait((self._loop.time(), data))
            # the sender closed: what it sent still gets through, unless blackholed
            if self.mode == BLACKHOLE:
                self._close(link, reset=True)
            else:
                await queue.join()
                self._close(link, reset=False)
        finally:
            deliver.cancel()

    async def _deliver(
        self,
        link: _Link,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        while True:
            arrived, data = await queue.get()
            try:
                while self.mode == BLACKHOLE and not link.closed:
                    assert self._changed is not None
                    await self._changed.wait()
                if self.mode == DELAY:
                    await asyncio.sleep(max(0.0, arrived + self.delay_s - self._loop.time()))
                if link.closed:
                    continue
                writer.write(data)
                await writer.drain()
                if link.hang_up_after_reply and not upstream:
                    self._close(link, reset=False)
            except (ConnectionError, OSError):
                self._close(link, reset=True)
            finally:
                queue.task_done()

    def _close(self, link: _Link, *, reset: bool) -> None:
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        for writer in (link.client, link.server):
            if reset:
                _reset(writer)
            else:
                writer.close()
        for task in link.tasks:
            if task is not asyncio.current_task():
                task.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
