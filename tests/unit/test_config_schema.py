"""The config's JSON Schema: valid itself, accepts the example, and names exactly the keys the
loader knows (so it cannot drift from the validator)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modbus_mqtt_bridge.config.fields import Problems
from modbus_mqtt_bridge.config.schema import config_schema
from modbus_mqtt_bridge.config.validate import build_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
BOGUS = "zzqqxx"  # a key close to nothing, so the validator lists the known keys instead


def _errors(doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_example_config_validates() -> None:
    path = ROOT / "config" / "example.yaml"
    if not path.exists():
        pytest.skip("config/example.yaml is not there yet")
    assert _errors(yaml.safe_load(path.read_text())) == []


def test_schema_command_prints_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out) == json.loads(json.dumps(SCHEMA))


def _known_keys(section_path: str, raw: dict[str, Any]) -> set[str]:
    """The keys the loader accepts at `section_path`, read from its unknown-key message."""
    problems = Problems()
    build_config(raw, problems)
    for problem in problems.items:
        if problem.path == f"{section_path}.{BOGUS}".lstrip("."):
            match = re.search(r"\(known: (.*)\)", problem.message)
            assert match, problem.message
            return set(match.group(1).split(", "))
    raise AssertionError(f"no unknown-key problem at {section_path}: {problems.items}")


def _register(**extra: Any) -> dict[str, Any]:
    return {"name": "r", "address": 40001, "type": "uint16", **extra}


def _base(**extra: Any) -> dict[str, Any]:
    return {
        "site": "s",
        "connections": [{"name": "lan", "host": "127.0.0.1"}],
        "devices": [{"name": "d", "registers": [_register()]}],
        **extra,
    }


def _schema_keys(*path: str) -> set[str]:
    node = SCHEMA
    for step in path:
        node = node["properties"][step]
        node = next(o for o in node.get("anyOf", [node]) if o.get("type") in ("object", "array"))
        if node["type"] == "array":
            node = node["items"]
    return set(node["properties"])


SECTIONS = ["mqtt", "commands", "buffer", "metrics", "homeassistant", "logging", "forward"]


@pytest.mark.parametrize("section", SECTIONS)
def test_section_keys_match_the_loader(section: str) -> None:
    raw = _base(**{section: {BOGUS: 1}})
    assert _schema_keys(section) == _known_keys(section, raw)


def test_top_tls_connection_device_and_register_keys_match_the_loader() -> None:
    assert _schema_keys() == _known_keys("", _base(**{BOGUS: 1}))
    assert _schema_keys("mqtt", "tls") == _known_keys("mqtt.tls", _base(mqtt={"tls": {BOGUS: 1}}))
    conn = _base(connections=[{"name": "lan", "host": "127.0.0.1", BOGUS: 1}])
    assert _schema_keys("connections") == _known_keys("connections[0]", conn)
    device = _base(devices=[{"name": "d", "registers": [_register()], BOGUS: 1}])
    assert _schema_keys("devices") == _known_keys("devices[0]", device)
    register = _base(devices=[{"name": "d", "registers": [_register(**{BOGUS: 1})]}])
    assert _schema_keys("devices", "registers") == _known_keys("devices[0].registers[0]", register)


def test_enums_come_from_the_loader_tables() -> None:
    device = SCHEMA["properties"]["devices"]["anyOf"][0]["items"]
    reg_props = device["properties"]["registers"]["items"]["properties"]
    assert {"float32", "float", "int", "bool", "string"} <= set(
        reg_props["type"]["anyOf"][0]["enum"]
    )
    assert {"holding", "coil", "input_register"} <= set(reg_props["table"]["anyOf"][0]["enum"])


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        (_base(mqtt={"qos": 3}), ["mqtt", "qos"]),
        (
            _base(devices=[{"name": "d", "registers": [_register(type="flot")]}]),
            ["devices", 0, "registers", 0, "type"],
        ),
        (_base(connections=[{"name": "bus", "type": "rtu"}]), ["connections", 0]),
        (_base(connections=[{"name": "lan"}]), ["connections", 0]),
        (
            _base(devices=[{"name": "d", "registers": [_register(interval="5 parsecs")]}]),
            ["devices"],
        ),
        ({"mqtt": {}}, []),
    ],
)
def test_schema_flags_what_the_loader_refuses(doc: dict[str, Any], where: list[Any]) -> None:
    best = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(doc))
    assert best is not None
    assert list(best.absolute_path)[: len(where)] == where, (best.absolute_path, best.message)


def test_environment_references_are_accepted_for_any_scalar() -> None:
    doc = _base(
        connections=[{"name": "lan", "host": "${HOST}", "port": "${PORT}", "timeout": "${T:-3}"}],
        mqtt={"qos": "${QOS}", "retain": "${RETAIN}"},
    )
    assert _errors(doc) == []
