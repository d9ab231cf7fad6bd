"""What the page's API says about connections and registers, from the board and the plan."""

from __future__ import annotations

import time
from pathlib import Path

from modbus_mqtt_bridge.bridge.board import BridgeStatus, DeviceBoard, Link
from modbus_mqtt_bridge.modbus.wiretime import estimate_bus
from modbus_mqtt_bridge.mqtt.buffer import MemoryBuffer
from modbus_mqtt_bridge.observe.health import Heartbeat
from modbus_mqtt_bridge.plan import build_plan
from modbus_mqtt_bridge.readings import ReadFailure, Reading
from tests.support.configs import config_from

YAML = """
site: t
mqtt: {url: "mqtt://127.0.0.1:1"}
connections:
  - {name: bus, type: rtu, port: /dev/ttyUSB0, baudrate: 9600}
  - {name: lan, type: tcp, host: 127.0.0.1, port: 1502}
devices:
  - name: m
    connection: bus
    interval: 100ms
    registers:
      - {name: a, address: 30001, type: uint16}
      - {name: b, address: 30010, type: uint16}
  - name: t
    connection: lan
    registers:
      - {name: c, address: 30001, type: uint16}
"""


class _Sink:
    def on_readings(self, *_args: object) -> None: ...

    def on_tick_end(self, *_args: object) -> None: ...

    def on_status(self, *_args: object) -> None: ...


def test_rtu_connection_reports_bus_load_and_registers_their_quality(tmp_path: Path) -> None:
    config = config_from(tmp_path, YAML)
    plan = build_plan(config)
    board = DeviceBoard(_Sink(), history=3)
    estimate = estimate_bus(config.connection("bus"), plan.for_connection("bus"))
    status = BridgeStatus(
        config,
        board,
        buffer=MemoryBuffer(10),
        broker_connected=lambda: False,
        heartbeat=Heartbeat(),
        links={"bus": Link(lambda: True, estimate), "lan": Link(lambda: False, None)},
    )
    connections = status.api_bridge()["connections"]
    assert isinstance(connections, list)
    bus, lan = connections
    assert bus["state"] == "connected" and lan["state"] == "down"
    assert estimate is not None and bus["bus"]["load"] == round(estimate.load, 3) > 0.4
    assert bus["bus"]["limit"] == 1.0 and "bus" not in lan

    device = config.device("m")
    a, b = device.registers
    ts = time.time_ns() // 1_000_000
    board.on_readings(device, [Reading(device, a, 5, ts)], [ReadFailure(device, b, "illegal", ts)])
    registers = {r["name"]: r for r in status.api_device("m")["registers"]}  # type: ignore[index]
    assert registers["a"]["quality"] == "fresh" and registers["a"]["value"] == 5
    assert registers["b"]["quality"] == "bad" and registers["b"]["error"] == "illegal"
    assert status.api_device("t")["registers"][0]["quality"] == "stale"  # type: ignore[index]
    assert status.api_device("nope") is None
    assert status.api_history("m", "nope", None) is None
