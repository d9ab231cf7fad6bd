"""Timing on a real pty line at 115,200 baud, where t3.5 is 1.75 ms and every loop turn shows:
the silence before a request holds at the write itself, a frame leaves when handed over,
and the simulator's line emulation never answers sooner than the wire would."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.modbus.frames import with_crc
from modbus_mqtt_bridge.modbus.port import ModbusPort
from modbus_mqtt_bridge.modbus.wiretime import exchange_time, inter_frame_delay
from tests.support.configs import config_from
from tests.support.pty import PtyPair
from tests.support.sim import SimThread

BAUD = 115200
GAP_S = inter_frame_delay(BAUD)
COUNT = 10
ANSWER = with_crc(bytes([1, 3, 2 * COUNT]) + bytes(2 * COUNT))  # unit 1, ten zero registers


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPair]:
    (tmp_path / "line").mkdir()
    pair = PtyPair(tmp_path / "line").plug()
    try:
        yield pair
    finally:
        pair.close()


def _open_raw(path: Path) -> int:
    fd = os.open(str(path), os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def _config(pty: PtyPair) -> Config:
    """Unit 1 with COUNT registers from 40001: one FC3 read of them (the simulator's too)."""
    registers = ", ".join(
        f"{{name: r{i}, address: {40001 + i}, type: uint16}}" for i in range(COUNT)
    )
    return config_from(
        pty.dir,
        f"site: t\nconnections: [{{name: bus, type: rtu, port: {pty.a}, baudrate: {BAUD},"
        f" timeout: 0.5}}]\n"
        f"devices: [{{name: d, unit: 1, interval: 1s, registers: [{registers}]}}]\n",
    )


class _EagerSlave(threading.Thread):
    """Unit 1 on the far end: answers every request at once and notes, per request, how
    long the line had been silent since its own last answer went out."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.silences: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        answered_at: float | None = None
        while not self.stop.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            arrived = time.monotonic()  # no earlier than the request's first byte came in
            request = os.read(self.fd, 256)
            while len(request) < 8 and select.select([self.fd], [], [], 0.05)[0]:
                request += os.read(self.fd, 256)
            if answered_at is not None:
                self.silences.append(arrived - answered_at)
            os.write(self.fd, ANSWER)
            answered_at = time.monotonic()  # no later than the answer's last byte left


def test_the_silence_before_each_request_holds_at_the_write(pty: PtyPair) -> None:
    slave = _EagerSlave(_open_raw(pty.b))
    slave.start()

    async def poll() -> None:
        port = ModbusPort(_config(pty).connections[0])
        await port.connect()
        try:
            for _ in range(60):
                assert await port.read(Table.HOLDING, 0, COUNT, 1) == [0] * COUNT
        finally:
            port.close()

    try:
        asyncio.run(poll())
    finally:
        slave.stop.set()
        slave.join(5)
        os.close(slave.fd)
    assert len(slave.silences) == 59
    # The bridge's silence counts from when it got the answer, later than the slave sent it.
    assert min(slave.silences) >= GAP_S, f"{min(slave.silences) * 1000:.3f} ms < t3.5"


def test_a_frame_is_on_the_line_when_pymodbus_hands_it_over(pty: PtyPair) -> None:
    far = _open_raw(pty.b)

    async def write_and_look() -> bool:
        port = ModbusPort(_config(pty).connections[0])
        await port.connect()
        try:
            port._client.ctx.transport.write(b"\x01\x03")
            # The loop has not run since the write: a queued frame would still be queued.
            return bool(select.select([far], [], [], 0.5)[0])
        finally:
            port.close()

    try:
        assert asyncio.run(write_and_look()), "the frame waited for the loop's next turn"
        assert os.read(far, 16) == b"\x01\x03"
    finally:
        os.close(far)


def test_the_emulated_line_never_answers_sooner_than_the_wire(pty: PtyPair) -> None:
    sim = SimThread(_config(pty), serial={"bus": str(pty.b)}).start()
    sim.call(lambda: setattr(sim.sim, "emulate_line", True))
    wire = exchange_time(Table.HOLDING, COUNT, BAUD, GAP_S) - GAP_S  # request, gap, answer
    master = _open_raw(pty.a)
    request = with_crc(bytes([1, 3, 0, 0, 0, COUNT]))
    took: list[float] = []
    try:
        for _ in range(30):
            sent = time.monotonic()
            os.write(master, request)
            answer = b""
            while len(answer) < len(ANSWER):
                assert select.select([master], [], [], 1.0)[0], "no answer"
                answer += os.read(master, 256)
            took.append(time.monotonic() - sent)
            assert answer[:3] == ANSWER[:3]
            time.sleep(GAP_S)
    finally:
        os.close(master)
        sim.stop()
    assert min(took) >= wire, f"{min(took) * 1000:.3f} ms < the wire's {wire * 1000:.3f} ms"
