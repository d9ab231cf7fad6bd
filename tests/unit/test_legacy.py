"""The legacy poller.py JSON device list: loaded as it is; converted YAML loads back equal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.cli.convert import legacy_to_yaml
from modbus_mqtt_bridge.config.legacy import is_legacy, slug
from modbus_mqtt_bridge.config.load import load_config, load_config_text
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "legacy-example.json"
SEED = Path("/work/shared/laravel-api/seed.json")
FULL_ENV = {
    "MQTT_URL": "mqtt://broker.lan:1884",
    "LARAVEL_API_URL": "http://127.0.0.1:8080/api/readings",
    "LARAVEL_API_TOKEN": "1|token",
    "LOG_LEVEL": "warning",
}


def write(tmp_path: Path, data: object, name: str = "devices.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return [str(p) for p in info.value.problems]


def test_example_loads() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.site == "plant"
    assert config.mqtt.url == "mqtt://localhost:1883"
    assert [(c.type, c.host, c.port, c.timeout_s) for c in config.connections] == [
        ("tcp", "127.0.0.1", 5020, 3.0),
        ("tcp", "127.0.0.1", 5021, 3.0),
    ]
    meter, hvac = config.devices
    assert (meter.name, meter.id, meter.unit_id, meter.interval_s) == (
        "main_incomer_energy_meter",
        1,
        1,
        1800.0,
    )
    assert meter.description == "Main incomer energy meter"
    assert (hvac.name, hvac.id, hvac.unit_id, hvac.connection) == (
        "hvac_sub_meter",
        2,
        2,
        "127.0.0.1:5021",
    )
    voltage = meter.registers[0]
    assert (voltage.name, voltage.parameter) == ("voltage_l_n", "Voltage (L-N)")
    assert (voltage.type, voltage.data_type) == ("float32", "float")
    assert (voltage.table, voltage.address, voltage.register_address) == (Table.HOLDING, 0, 40001)
    assert voltage.engineering_unit == "V" and voltage.interval_s == 1800.0
    assert hvac.registers[0].table is Table.INPUT


def test_example_matches_the_laravel_seed() -> None:
    """Every legacy register is a parameter the Laravel test app knows, at the same address."""
    if not SEED.exists():
        pytest.skip("the shared Laravel app is not here")
    seed = json.loads(SEED.read_text())
    known = {
        (d["id"], p["name"]): (p["register_address"], p["data_type"], p["unit"])
        for d in seed["devices"]
        for p in d["parameters"]
    }
    config = load_config(EXAMPLE, env={})
    found = {
        (d.id, r.parameter): (r.register_address, r.data_type, r.engineering_unit)
        for d in config.devices
        for r in d.registers
    }
    assert found == known


def test_environment_fills_what_the_legacy_service_read_from_it() -> None:
    config = load_config(EXAMPLE, env=FULL_ENV)
    assert config.mqtt.url == "mqtt://broker.lan:1884"
    assert config.forward.api_url == "http://127.0.0.1:8080/api/readings"
    assert config.forward.token == "1|token"
    assert config.logging.level == "WARNING"


@pytest.mark.parametrize("env", [{}, FULL_ENV])
def test_converted_yaml_loads_back_equal(tmp_path: Path, env: dict[str, str]) -> None:
    text = legacy_to_yaml(EXAMPLE)
    assert text.startswith("# modbus-mqtt-bridge config, converted from")
    assert "address: 40001" in text and "parameter: Voltage (L-N)" in text
    converted = tmp_path / "converted.yaml"
    converted.write_text(text)
    assert load_config(converted, env=env) == load_config(EXAMPLE, env=env)


def test_object_form_and_shared_connections(tmp_path: Path) -> None:
    data = {
        "site": "factory",
        "devices": [
            {"device_id": 7, "ip": "10.0.0.9", "slave_id": 3, "timeout": 2,
             "registers": [{"address": 40001, "parameter": "Status", "data_type": "uint16"},
                           {"address": "00003", "parameter": "Pump on", "data_type": "bool"}]},
            {"device_id": 8, "ip": "10.0.0.9", "slave_id": 4, "timeout": 5, "name": "Boiler",
             "registers": [{"address": 30001, "parameter": "Temp °C", "scale": 0.1},
                           {"address": 30002, "parameter": "Temp-C", "data_type": "int"}]},
            {"device_id": 9, "ip": "10.0.0.9", "port": 1502, "name": "Boiler",
             "registers": [{"address": 40001, "parameter": "!!!"}]},
        ],
    }  # fmt: skip
    path = write(tmp_path, data)
    config = load_config(path, env={})
    assert config.site == "factory"
    assert [(c.name, c.port, c.timeout_s) for c in config.connections] == [
        ("10.0.0.9:502", 502, 5.0),  # shared by two devices: the slower timeout wins
        ("10.0.0.9:1502", 1502, 3.0),
    ]
    first, boiler, boiler2 = config.devices
    assert (first.name, boiler.name, boiler2.name) == ("device7", "boiler", "boiler_2")
    assert [r.name for r in first.registers] == ["status_value", "pump_on"]
    assert first.registers[1].table is Table.COIL and first.registers[1].register_address == 3
    assert [r.name for r in boiler.registers] == ["temp_c", "temp_c_2"]
    assert boiler.registers[0].data_type == "float"  # the legacy default
    assert boiler.registers[0].scale == 0.1
    assert boiler2.registers[0].name == "register1"
    yaml_path = tmp_path / "converted.yaml"
    yaml_path.write_text(legacy_to_yaml(path))
    assert load_config(yaml_path, env=FULL_ENV) == load_config(path, env=FULL_ENV)


@pytest.mark.parametrize(
    ("parameter", "name"),
    [
        ("Voltage (L-N)", "voltage_l_n"),
        ("Active Energy Import", "active_energy_import"),
        ("  kWh/day  ", "kwh_day"),
        ("Power_Factor", "power_factor"),
        ("Température", "temp_rature"),
        ("---", ""),
    ],
)
def test_slug(parameter: str, name: str) -> None:
    assert slug(parameter) == name


def test_is_legacy() -> None:
    assert is_legacy([])
    assert is_legacy({"devices": [{"device_id": 1}]})
    assert not is_legacy({"devices": [{"name": "d"}]})
    assert not is_legacy({"connections": [], "devices": [{"ip": "x"}]})
    assert not is_legacy("text")


def test_problems_point_at_the_legacy_file(tmp_path: Path) -> None:
    data = [
        {"device_id": 1, "ip": "10.0.0.1", "slaveid": 1,
         "registers": [{"address": 40001, "parameter": "V", "data_type": "flot"},
                       {"address": 123, "parameter": "A", "data_type": "float"},
                       {"adress": 40003, "parameter": "P"},
                       "oops"]},
        {"port": "x", "registers": "none"},
        7,
    ]  # fmt: skip
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(data))  # one line: every problem is on line 1
    # In file order, as the user reads their file; a missing key right after its item.
    assert [line.replace(" (line 1)", "") for line in errors(path)] == [
        "[0].slaveid: unknown key (did you mean slave_id?)",
        "[0].registers[0].data_type: unknown type 'flot' (did you mean float?)",
        "[0].registers[1].address: address 123 is not Modicon notation (5 or 6 digits, e.g. "
        "40001 or 00001); add table: to give a 0-based address",
        "[0].registers[2].address: missing required key",
        "[0].registers[2].adress: unknown key (did you mean address?)",
        "[0].registers[3]: expected a mapping, got 'oops'",
        "[1].device_id: missing required key",
        "[1].ip: missing required key for a tcp connection",
        "[1].port: expected an integer, got 'x'",
        "[1].registers: expected a list, got 'none'",
        "[2]: expected a mapping (one device)",
    ]


def test_problem_lines_come_from_the_json_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"devices": [{"device_id": 1, "ip": "h", "registers": [
        {"address": 40001, "parameter": "V", "data_type": "float"},
        {"address": 40003, "parameter": "A", "data_type": "dbl"}]}]})  # fmt: skip
    assert errors(path) == [
        "devices[0].registers[1].data_type (line 15): unknown type 'dbl' (did you mean double?)"
    ]


def test_json_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    path.write_text('[\n  {"device_id": 1,\n   "ip": "h",}\n]\n')
    assert errors(path) == [
        "JSON syntax error at line 3, column 14: Expecting property name enclosed in double quotes"
    ]


def test_convert_refuses_what_would_not_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown type 'flot'"):
        legacy_to_yaml(write(tmp_path, [{"device_id": 1, "ip": "h", "registers": [
            {"address": 40001, "parameter": "V", "data_type": "flot"}]}]))  # fmt: skip
    with pytest.raises(ConfigError, match="is not a legacy device list"):
        legacy_to_yaml(ROOT / "config" / "demo.yaml")


def test_legacy_shape_in_yaml_is_accepted_too() -> None:
    text = "- device_id: 3\n  ip: h\n  registers:\n    - {address: 40001, parameter: V}\n"
    config = load_config_text(text, {})
    assert config.devices[0].name == "device3"


LEGACY_DEVICE = st.fixed_dictionaries(
    {
        "device_id": st.integers(1, 50),
        "ip": st.sampled_from(["10.0.0.1", "10.0.0.2", "gw.local"]),
        "port": st.sampled_from([502, 1502]),
        "slave_id": st.integers(1, 247),
        "timeout": st.sampled_from([1, 2.5, 3]),
        "registers": st.lists(
            st.fixed_dictionaries(
                {
                    "address": st.sampled_from([30001, 30003, 40001, 40101, 10001, "00007"]),
                    "parameter": st.text(min_size=1, max_size=12),
                    "data_type": st.sampled_from(["float", "int", "uint16", "float32", "uint32"]),
                    "scale": st.sampled_from([1, 0.1, 10.0]),
                    "unit": st.none() | st.sampled_from(["V", "A", "kWh", "°C"]),
                    "description": st.none() | st.text(max_size=20),
                }
            ),
            min_size=1,
            max_size=4,
        ),
    },
    optional={"name": st.text(max_size=12)},
)


@settings(max_examples=40, deadline=None)
@given(st.lists(LEGACY_DEVICE, min_size=1, max_size=3))
def test_any_legacy_list_converts_to_equal_yaml(
    tmp_path_factory: pytest.TempPathFactory, devices: list[dict[str, object]]
) -> None:
    folder = tmp_path_factory.mktemp("legacy")
    path = write(folder, devices)
    try:
        expected = load_config(path, env=FULL_ENV)
    except ConfigError:
        return  # e.g. a coil with a float data_type: convert refuses it too
    converted = folder / "converted.yaml"
    converted.write_text(legacy_to_yaml(path))
    assert load_config(converted, env=FULL_ENV) == expected


@pytest.mark.parametrize("text", ["${", "$${", "a ${HOME} b", "$x ${ $"])
def test_legacy_text_with_dollar_braces_converts_to_the_same_text(
    tmp_path: Path, text: str
) -> None:
    """JSON expands nothing, YAML expands `${...}`: the converter writes `${` as `$${`
    (Hypothesis found a description `${` the converted YAML refused as unterminated)."""
    path = write(tmp_path, [{"device_id": 1, "ip": "h", "name": text,
                             "registers": [{"address": 40001, "parameter": text,
                                            "description": text}]}])  # fmt: skip
    expected = load_config(path, env=FULL_ENV)
    assert expected.devices[0].registers[0].description == text
    converted = tmp_path / "converted.yaml"
    converted.write_text(legacy_to_yaml(path))
    assert load_config(converted, env=FULL_ENV) == expected


def test_legacy_device_may_set_interval(tmp_path: Path) -> None:
    path = write(tmp_path, [{"device_id": 1, "ip": "h", "interval": "5s",
                             "registers": [{"address": 40001, "parameter": "V"}]}])  # fmt: skip
    assert load_config(path, env={}).devices[0].interval_s == 5.0
