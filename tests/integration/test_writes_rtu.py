"""Writes on a real RS-485 line (a socat pty pair, the simulator on the far end): a write goes
out exactly once whatever the line does to its answer, and the read-back decides `ok`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.modbus.port import ModbusPort
from modbus_mqtt_bridge.writes.handler import write_once
from tests.support.configs import config_from
from tests.support.pty import PtyPair
from tests.support.sim import SimThread

WRITE_CODES = (5, 6, 15, 16, 22)


def _yaml(port: Path) -> str:
    return f"""
        site: rtuw
        connections: [{{name: bus, type: rtu, port: {port}, baudrate: 19200, timeout: 0.3}}]
        devices:
          - name: plc
            unit: 3
            registers:
              - {{name: mode, address: 40004, type: uint16, writable: true}}
              - {{name: flags, address: 40005, type: uint16}}
              - {{name: alarm, address: 40005, type: bool, bit: 2, writable: true}}
        """


@dataclass
class Line:
    config: Config
    sim: SimThread
    pty: PtyPair

    def requests_received(self) -> list[bytes]:
        """Every request frame the slave received, in order (receive chunks joined)."""
        log = self.sim.call(lambda: list(self.sim.sim.line_log or []))
        frames: list[bytes] = []
        receiving = False
        for _, sending, data in log:
            if not sending and receiving:
                frames[-1] += data  # the server's receive buffer growing: one request
            elif not sending:
                frames.append(bytes(data))
            receiving = not sending
        return frames

    def writes_received(self) -> list[bytes]:
        return [f for f in self.requests_received() if len(f) > 1 and f[1] in WRITE_CODES]


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    (tmp_path / "line").mkdir()
    pty = PtyPair(tmp_path / "line").plug()
    config = config_from(tmp_path, _yaml(pty.a))
    sim = SimThread(config, serial={"bus": str(pty.b)}).start()
    sim.set_value("plc", "mode", 1)
    sim.call(lambda: setattr(sim.sim, "line_log", []))
    try:
        yield Line(config, sim, pty)
    finally:
        sim.stop()
        pty.close()


@pytest.mark.parametrize("noise", ["crc", "garbage", "partial"])
def test_a_write_whose_answer_is_mangled_is_sent_once_and_read_back(line: Line, noise: str) -> None:
    # The slave applies the write; the line mangles its acknowledgement on the way back.
    line.sim.call(lambda: line.sim.sim.unit("plc").faults.append(noise))
    code, answer = asyncio.run(write_once(line.config, "plc", "mode", "7"))
    assert len(line.writes_received()) == 1, line.requests_received()
    result = json.loads(answer)
    assert result == {"id": None, "ok": True, "value": 7, "readback": 7}, result
    assert code == 0
    assert line.sim.call(lambda: line.sim.sim.value_of("plc", "mode")) == 7


def test_a_read_whose_answer_is_mangled_is_asked_again(line: Line) -> None:
    """Reads (and so read-backs) still recover from noise: asked once more."""
    line.sim.call(lambda: line.sim.sim.unit("plc").faults.append("crc"))

    async def read() -> list[int]:
        port = ModbusPort(line.config.connection("bus"))
        await port.connect()
        try:
            return await port.read(Table.HOLDING, 3, 1, 3)
        finally:
            port.close()

    assert asyncio.run(read()) == [1]
    assert [f[1] for f in line.requests_received()] == [3, 3]
