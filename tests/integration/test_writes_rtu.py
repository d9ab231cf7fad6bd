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
from tests.support.bridge import BridgeThread
from tests.support.configs import config_from, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.ports import wait_until
from tests.support.process import run_cli
from tests.support.pty import PtyPair
from tests.support.sim import SimThread

WRITE_CODES = (5, 6, 15, 16, 22)


def _yaml(port: Path, mqtt_url: str = "mqtt://127.0.0.1:1") -> str:
    return f"""
        site: rtuw
        mqtt: {{url: "{mqtt_url}"}}
        connections: [{{name: bus, type: rtu, port: {port}, baudrate: 19200, timeout: 0.3}}]
        devices:
          - name: plc
            unit: 3
            interval: 200ms
            registers:
              - {{name: mode, address: 40004, type: uint16, writable: true}}
              - {{name: flags, address: 40005, type: uint16}}
              - {{name: alarm, address: 40005, type: bool, bit: 2, writable: true}}
              - {{name: trip, address: 40005, type: bool, bit: 5, writable: true,
                  bit_write: mask}}
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


# -- one bit of a register -------------------------------------------------------------


def test_a_bit_with_bit_write_mask_is_one_fc22_and_the_other_bits_stay(line: Line) -> None:
    line.sim.set_value("plc", "flags", 0b1000_0001)
    code, answer = asyncio.run(write_once(line.config, "plc", "trip", "ON"))
    assert (code, json.loads(answer)) == (
        0,
        {"id": None, "ok": True, "value": True, "readback": True},
    )
    # no read before the write: the device applies the masks itself, atomically
    assert [f[1] for f in line.requests_received()] == [22, 3]
    assert line.sim.call(lambda: line.sim.sim.read_raw("plc", "flags")) == [0b1010_0001]
    code, answer = asyncio.run(write_once(line.config, "plc", "trip", "OFF"))
    assert json.loads(answer)["ok"] is True
    assert line.sim.call(lambda: line.sim.sim.read_raw("plc", "flags")) == [0b1000_0001]


def test_a_bit_by_default_is_read_modify_write(line: Line) -> None:
    line.sim.set_value("plc", "flags", 0b1000_0001)
    code, answer = asyncio.run(write_once(line.config, "plc", "alarm", "ON"))
    assert (code, json.loads(answer)["ok"]) == (0, True)
    assert [f[1] for f in line.requests_received()] == [3, 6, 3]
    assert line.sim.call(lambda: line.sim.sim.read_raw("plc", "flags")) == [0b1000_0101]


# -- the port is the bridge's alone ----------------------------------------------------


def test_a_second_opener_of_the_bridges_port_is_told_to_use_mqtt(
    line: Line, tmp_path: Path, broker: Mosquitto
) -> None:
    yaml = _yaml(line.pty.a, broker.url)
    path = write_config(tmp_path, yaml, "held.yaml")
    bridge = BridgeThread(config_from(tmp_path, yaml)).start()
    try:
        wait_until(line.requests_received, 15, "the bridge to poll the line")
        polled = len(line.requests_received())
        write = run_cli("write", "-c", str(path), "plc", "mode", "7", cwd=tmp_path)
        read = run_cli("read", "--serial", str(line.pty.a), "--address", "40004", cwd=tmp_path)
        for done in (write, read):
            assert done.returncode == 1, (done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
        (written,) = write.stdout.splitlines()
        assert json.loads(written)["ok"] is False
        assert f"serial port {line.pty.a} is in use, probably by the running bridge" in written
        assert "MQTT command topic" in written
        (refused,) = read.stderr.splitlines()
        assert refused.startswith(f"error: serial port {line.pty.a} is in use"), refused
        # the bridge's own exchanges went on untouched, and nothing was written
        wait_until(lambda: len(line.requests_received()) > polled + 2, 15, "more polls")
        assert line.writes_received() == []
    finally:
        bridge.stop()
