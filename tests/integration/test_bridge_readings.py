"""The core promise end to end: config -> Modbus TCP slave -> bridge -> Mosquitto -> subscriber."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import Config
from tests.support.bridge import BridgeThread
from tests.support.configs import config_from, one_connection_yaml
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber, reading_ts

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
# (type, value): each fits its type and survives the wire exactly.
TYPED_VALUES = [
    ("int16", -1234),
    ("uint16", 54321),
    ("int32", -123456789),
    ("uint32", 4000000000),
    ("int64", -1234567890123),
    ("uint64", 18000000000000000000),
    ("float32", 228.6),
    ("float64", 12345.678901),
]


def _all_types_yaml(mqtt_url: str, modbus_port: int) -> str:
    registers = []
    address = 0
    for byte_order, word_order in ORDERS:
        for type_name, _ in TYPED_VALUES:
            name = f"{type_name}_{byte_order[0]}{word_order[0]}"
            registers.append(
                f"  - {{name: {name}, table: holding, address: {address}, type: {type_name},"
                f" byte_order: {byte_order}, word_order: {word_order}, unit: U,"
                f" description: 'a {type_name}'}}"
            )
            address += 4
    registers += [
        "  - {name: coil0, address: 00001, type: bool}",
        "  - {name: input_bit, address: 10003, type: bool}",
        "  - {name: flag, table: holding, address: 200, type: bool, bit: 3}",
        "  - {name: label, table: holding, address: 210, type: string, length: 2}",
        "  - {name: scaled, address: 30001, type: int16, scale: 0.1, offset: -40, unit: °C}",
        "  - {name: legacy_float, parameter: Voltage (L-N), address: 30010, type: float,"
        " unit: V, description: Line to Neutral Voltage}",
    ]
    header = f"""site: plant1
mqtt: {{url: "{mqtt_url}", qos: 1, retain: true}}
connections:
  - {{name: lan, type: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 1}}
devices:
- name: meter1
  id: 7
  connection: lan
  unit: 3
  interval: 500ms
  registers:
"""
    return header + "\n".join("  " + line for line in registers) + "\n"


@pytest.fixture
def all_types(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[Config, SimThread]]:
    config = config_from(tmp_path, _all_types_yaml(broker.url, free_port()))
    sim = SimThread(config).start()
    for byte_order, word_order in ORDERS:
        for type_name, value in TYPED_VALUES:
            sim.set_value("meter1", f"{type_name}_{byte_order[0]}{word_order[0]}", value)
    for name, value in [
        ("coil0", True),
        ("input_bit", True),
        ("flag", True),
        ("label", "AB12"),
        ("scaled", 21.5),
        ("legacy_float", 228.6),
    ]:
        sim.set_value("meter1", name, value)
    yield config, sim
    sim.stop()


def test_every_type_and_order_arrives_exactly(
    all_types: tuple[Config, SimThread], subscriber: Subscriber
) -> None:
    config, _sim = all_types
    bridge = BridgeThread(config).start()
    try:
        before_ms = time.time() * 1000 - 1000
        for byte_order, word_order in ORDERS:
            for type_name, value in TYPED_VALUES:
                name = f"{type_name}_{byte_order[0]}{word_order[0]}"
                payload = subscriber.wait_for(f"plant1/meter1/{name}")[0].json()
                assert payload["value"] == value, (name, payload)
                assert payload["data_type"] == type_name
                assert payload["unit"] == "U"
                assert payload["device_id"] == 7
                assert payload["parameter"] == name
                assert payload["description"] == f"a {type_name}"
                assert reading_ts(payload["ts"]) * 1000 >= before_ms
                assert payload["ts"].endswith("Z") and len(payload["ts"]) == 24
        got = {
            n: subscriber.wait_for(f"plant1/meter1/{n}")[0].json()
            for n in ("coil0", "input_bit", "flag", "label", "scaled", "legacy_float")
        }
        assert got["coil0"]["value"] is True
        assert got["coil0"]["register_address"] == 1  # as written: 00001
        assert got["input_bit"]["value"] is True
        assert got["flag"]["value"] is True
        assert got["label"]["value"] == "AB12"
        assert got["scaled"]["value"] == 21.5
        assert got["scaled"]["unit"] == "°C"
        assert got["legacy_float"] == {
            "value": 228.6,
            "unit": "V",
            "ts": got["legacy_float"]["ts"],
            "device_id": 7,
            "parameter": "Voltage (L-N)",
            "register_address": 30010,
            "data_type": "float",
            "description": "Line to Neutral Voltage",
        }
        assert list(got["legacy_float"]) == [
            "value",
            "unit",
            "ts",
            "device_id",
            "parameter",
            "register_address",
            "data_type",
            "description",
        ]
        retained = list(subscriber.on("plant1/meter1/status"))
        assert retained and retained[-1].text == "online"
    finally:
        bridge.stop()


def test_retained_readings_reach_a_late_subscriber(
    all_types: tuple[Config, SimThread], broker: Mosquitto
) -> None:
    config, _ = all_types
    bridge = BridgeThread(config).start()
    try:
        first = Subscriber(broker.port, "plant1/meter1/scaled")
        first.wait_for("plant1/meter1/scaled")
        first.close()
        late = Subscriber(broker.port, "plant1/meter1/scaled")
        message = late.wait_for("plant1/meter1/scaled")[0]
        assert message.retain, "a retained reading must come back to a new subscriber"
        assert message.json()["value"] == 21.5
        late.close()
    finally:
        bridge.stop()


def test_per_register_intervals_keep_a_fixed_rate(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    port = free_port()
    config = config_from(
        tmp_path,
        one_connection_yaml(
            site="rate",
            mqtt_url=broker.url,
            modbus_port=port,
            mqtt="qos: 0, retain: false",
            devices="""
          - name: dev
            connection: lan
            interval: 1s
            registers:
              - {name: fast, address: 40001, type: uint16, interval: 200ms}
              - {name: slow, address: 40010, type: uint16}
            """,
        ),
    )
    sim = SimThread(config).start()
    bridge = BridgeThread(config).start()
    try:
        fast = [m.json() for m in subscriber.wait_for("rate/dev/fast", 16, timeout=10)]
        slow = [m.json() for m in subscriber.on("rate/dev/slow")]
        # ~3 s elapsed: fast ran about 5x as often as slow
        assert 2 <= len(slow) <= 5, len(slow)
        stamps = [reading_ts(p["ts"]) for p in fast]
        gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]
        assert all(0.1 < g < 0.35 for g in gaps), gaps
        # fixed rate: no drift, 15 intervals take 3 s (not 3 s plus the work)
        span = stamps[15] - stamps[0]
        assert math.isclose(span, 3.0, abs_tol=0.15), span
    finally:
        bridge.stop()
        sim.stop()


def test_deadband_max_age_and_device_payload(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    port = free_port()
    config = config_from(
        tmp_path,
        one_connection_yaml(
            site="db",
            mqtt_url=broker.url,
            modbus_port=port,
            mqtt="qos: 1, retain: false, device_payload: true",
            devices="""
          - name: dev
            connection: lan
            interval: 100ms
            registers:
              - {name: banded, address: 40001, type: float32, deadband: 0.5, max_age: 1s}
              - {name: plain, address: 40003, type: uint16}
            """,
        ),
    )
    sim = SimThread(config).start()
    sim.set_value("dev", "banded", 10.0)
    sim.set_value("dev", "plain", 5)
    bridge = BridgeThread(config).start()
    try:
        subscriber.wait_for("db/dev/plain", 12)
        banded = subscriber.on("db/dev/banded")
        # ~1.2 s of 100 ms polls: the first reading, then max_age (1 s) once at most twice
        assert 1 <= len(banded) <= 3, len(banded)
        sim.set_value("dev", "banded", 10.3)  # inside the deadband: not published
        count = len(subscriber.on("db/dev/banded"))
        sim.set_value("dev", "banded", 11.0)  # beyond it: published
        got = subscriber.wait_payload_match("db/dev/banded", lambda p: p["value"] == 11.0)
        assert got["value"] == 11.0
        assert all(m.json()["value"] != 10.3 for m in subscriber.on("db/dev/banded")[count:])
        device = subscriber.wait_for("db/dev", 3)[-1].json()
        assert set(device) == {"ts", "banded", "plain"}
        assert device["plain"] == 5
    finally:
        bridge.stop()
        sim.stop()
