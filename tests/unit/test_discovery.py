"""Home Assistant discovery payloads: shape checked against a schema derived from HA's docs."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modbus_mqtt_bridge.bridge.discovery import UNIT_CLASSES, device_message, safe_id, value_range
from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.errors import ConfigError
from tests.support.configs import config_from
from tests.support.ha_schema import DEVICE_CLASS_UNITS, DEVICE_DISCOVERY

VALIDATOR = jsonschema.Draft202012Validator(DEVICE_DISCOVERY)

YAML = """
    site: plant.1
    mqtt: {url: "mqtt://127.0.0.1:1883"}
    homeassistant: {discovery: true}
    connections:
      - {name: lan, type: tcp, host: 127.0.0.1, port: 5020}
    devices:
      - name: meter.1
        id: 1
        description: Main incomer
        registers:
          - {name: voltage, parameter: "Voltage (L-N)", address: 30001, type: float32, unit: V}
          - {name: energy, address: 30011, type: uint32, scale: 0.1, unit: kWh}
          - {name: humidity, address: 30021, type: uint16, unit: "%"}
          - {name: code, address: 30022, type: uint16}
          - {name: setpoint, address: 40001, type: int16, scale: 0.1, unit: kW, writable: true}
          - {name: limit, address: 40002, type: uint16, writable: true, min: 10, max: 90}
          - {name: big, address: 40003, type: uint64, writable: true}
          - {name: precise, address: 40007, type: float64, writable: true, unit: "°C"}
          - {name: pump_on, address: 00001, writable: true}
          - {name: alarm, address: 10001}
          - {name: bit_flag, address: 30030, bit: 3}
          - {name: label, address: 40020, type: string, length: 4}
          - {name: tag, address: 40030, type: string, length: 125, writable: true}
          - {name: odd.name, address: 40050, type: uint16}
      - name: meter_1
        id: 2
        registers:
          - {name: voltage, address: 30001, type: float32, unit: V}
    """


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_from(tmp_path, YAML)


def _payloads(config: Config) -> dict[str, dict[str, Any]]:
    return {
        topic: json.loads(body)
        for topic, body in (device_message(config, d) for d in config.devices)
    }


def test_every_payload_is_valid_device_discovery(config: Config) -> None:
    for topic, payload in _payloads(config).items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(payload)]
        assert not errors, f"{topic}: {errors}"
        assert re.fullmatch(r"homeassistant/device/[A-Za-z0-9_-]+/config", topic)


def test_ids_are_sanitized_and_distinct(config: Config) -> None:
    topics = list(_payloads(config))
    # "plant.1_meter.1" and "plant.1_meter_1" clean to the same text: a hash keeps them apart
    assert len(set(topics)) == 2
    unique_ids = [c["unique_id"] for p in _payloads(config).values() for c in p["cmps"].values()]
    assert len(unique_ids) == len(set(unique_ids))
    assert safe_id("ok_id-1") == "ok_id-1"
    assert safe_id("a.b") != safe_id("a b") != safe_id("a_b")


def test_availability_from_bridge_and_device(config: Config) -> None:
    payload = next(iter(_payloads(config).values()))
    assert [a["topic"] for a in payload["availability"]] == [
        "plant.1/bridge/status",
        "plant.1/meter.1/status",
    ]
    assert payload["availability_mode"] == "all"
    assert payload["dev"]["model"] == "Main incomer"
    assert payload["o"]["name"] == "modbus-mqtt-bridge"


def _components(config: Config) -> dict[str, dict[str, Any]]:
    return next(iter(_payloads(config).values()))["cmps"]  # type: ignore[no-any-return]


def test_platforms_units_and_classes(config: Config) -> None:
    c = _components(config)
    assert (
        c["voltage"].items()
        >= {
            "p": "sensor",
            "name": "Voltage (L-N)",
            "state_topic": "plant.1/meter.1/voltage",
            "value_template": "{{ value_json.value }}",
            "unit_of_measurement": "V",
            "device_class": "voltage",
            "state_class": "measurement",
        }.items()
    )
    assert (c["energy"]["device_class"], c["energy"]["state_class"]) == (
        "energy",
        "total_increasing",
    )
    assert "device_class" not in c["humidity"] and c["humidity"]["state_class"] == "measurement"
    assert "state_class" not in c["code"]  # no unit: not known to be a measurement
    assert c["pump_on"]["p"] == "switch"
    assert c["pump_on"]["command_topic"] == "plant.1/meter.1/pump_on/set"
    assert c["pump_on"]["value_template"] == "{{ 'ON' if value_json.value else 'OFF' }}"
    assert c["alarm"]["p"] == c["bit_flag"]["p"] == "binary_sensor"
    assert c["label"]["p"] == "sensor" and "unit_of_measurement" not in c["label"]
    assert c["tag"].items() >= {"p": "text", "min": 0, "max": 250}.items()
    assert "odd.name" not in c and any(k.startswith("odd_name_") for k in c)


def test_numbers_always_carry_their_range(config: Config) -> None:
    c = _components(config)
    assert (
        c["setpoint"].items()
        >= {
            "p": "number",
            "command_topic": "plant.1/meter.1/setpoint/set",
            "min": -3276.8,
            "max": 3276.7,
            "step": 0.1,
            "unit_of_measurement": "kW",
            "device_class": "power",
        }.items()
    )
    assert (c["limit"]["min"], c["limit"]["max"], c["limit"]["step"]) == (10, 90, 1)
    assert (c["big"]["min"], c["big"]["max"]) == (0, 2**64 - 1)
    assert c["precise"]["min"] < -1e300 and c["precise"]["max"] > 1e300
    assert c["precise"]["step"] == 0.001
    for component in c.values():
        if component["p"] == "number":
            assert component["min"] < component["max"]


def test_value_range_follows_scale_sign(config: Config) -> None:
    register = config.device("meter.1").registers[4]
    flipped = dataclasses.replace(register, scale=-2.0, offset=1.0)
    assert value_range(flipped) == (-65533, 65537)


def test_device_payload_mode_reads_the_device_json(tmp_path: Path) -> None:
    config = config_from(
        tmp_path,
        YAML.replace(
            'mqtt: {url: "mqtt://127.0.0.1:1883"}',
            'mqtt: {url: "mqtt://127.0.0.1:1883", per_register: false, device_payload: true}',
        ),
    )
    c = _components(config)
    assert c["voltage"]["state_topic"] == "plant.1/meter.1"
    assert c["voltage"]["value_template"] == '{{ value_json["voltage"] }}'
    assert c["pump_on"]["value_template"] == "{{ 'ON' if value_json[\"pump_on\"] else 'OFF' }}"


def test_unit_table_only_uses_units_home_assistant_accepts() -> None:
    for unit, (device_class, state_class) in UNIT_CLASSES.items():
        if device_class is None:
            continue  # no class: HA takes any unit
        assert unit in DEVICE_CLASS_UNITS[device_class], (unit, device_class)
        if device_class == "energy":
            assert state_class == "total_increasing"


def test_schema_rejects_what_home_assistant_rejects(config: Config) -> None:
    good = next(iter(_payloads(config).values()))
    number = next(k for k, v in good["cmps"].items() if v["p"] == "number")
    bad_cases = [
        {k: v for k, v in good.items() if k != "o"},
        {**good, "obj_id": "x"},
        {**good, "cmps": {"bad id": good["cmps"][number]}},
        {**good, "cmps": {number: {k: v for k, v in good["cmps"][number].items() if k != "max"}}},
        {**good, "cmps": {"v": {**good["cmps"]["voltage"], "unit_of_measurement": "VAC"}}},
        {**good, "cmps": {"e": {**good["cmps"]["energy"], "state_class": "measurement"}}},
    ]
    for payload in bad_cases:
        assert not VALIDATOR.is_valid(payload), payload


ENERGY_METER = """
    site: s
    mqtt: {url: "mqtt://127.0.0.1:1883"}
    homeassistant: {discovery: true}
    connections: [{name: lan, host: 127.0.0.1}]
    devices:
      - name: meter
        registers:
          - {name: wh, address: 30001, type: uint32, unit: Wh}
          - {name: kwh, address: 30003, type: uint32, unit: kWh}
          - {name: mwh, address: 30005, type: uint32, unit: MWh}
          - {name: varh, address: 30007, type: uint32, unit: varh}
          - {name: kvarh, address: 30009, type: uint32, unit: kvarh}
          - {name: ah, address: 30011, type: uint32, unit: Ah}
          - {name: net, address: 30013, type: int32, unit: kWh, state_class: total}
          - {name: heat, address: 30015, type: uint32, unit: MJ, device_class: energy,
             state_class: total_increasing}
    """


def test_energy_counters_reach_the_energy_dashboard(tmp_path: Path) -> None:
    config = config_from(tmp_path, ENERGY_METER)
    payload = next(iter(_payloads(config).values()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(payload)]
    assert not errors
    classes = {
        name: (c.get("device_class"), c.get("state_class")) for name, c in payload["cmps"].items()
    }
    assert classes == {
        "wh": ("energy", "total_increasing"),
        "kwh": ("energy", "total_increasing"),
        "mwh": ("energy", "total_increasing"),
        "varh": (None, "total_increasing"),
        "kvarh": (None, "total_increasing"),
        "ah": (None, "total_increasing"),
        "net": ("energy", "total"),  # a bidirectional meter: the register's choice wins
        "heat": ("energy", "total_increasing"),  # a unit the table lacks, classed by hand
    }


def test_a_bad_state_class_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_from(tmp_path, ENERGY_METER.replace("state_class: total}", "state_class: totl}"))
    assert [p.message for p in info.value.problems] == [
        "expected one of measurement, total, total_increasing, got 'totl' (did you mean total?)"
    ]
