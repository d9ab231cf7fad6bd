"""Loading valid configs: shipped examples, defaults, ${VAR}, the octal trap, file errors."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config import yaml_source
from modbus_mqtt_bridge.config.load import load_config, load_config_text, resolve_config_path
from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = """\
site: plant1
connections:
  - {name: lan, host: 10.0.0.5}
devices:
  - name: meter1
    registers:
      - {name: v, address: 40001, type: float32}
"""


def load(text: str, env: Mapping[str, str] | None = None) -> Config:
    return load_config_text(textwrap.dedent(text), {} if env is None else env)


def problems(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return [str(p) for p in info.value.problems]


# -- the shipped configs ---------------------------------------------------------------------


def test_example_yaml_loads_without_environment() -> None:
    config = load_config(ROOT / "config" / "example.yaml", env={})
    assert config.site == "plant1"
    assert [c.type for c in config.connections] == ["tcp", "tcp", "rtu", "rtu-over-tcp"]
    secure = config.connection("secure").tls
    assert secure is not None and secure.server_hostname == "plc7.plant1"
    assert [d.name for d in config.devices] == ["meter1", "hvac", "boiler"]
    assert config.mqtt.url == "mqtt://localhost:1883"
    assert config.mqtt.username is None and config.mqtt.password is None
    assert config.forward.api_url is None and config.forward.token is None
    assert config.metrics.listen == "127.0.0.1:9105"
    meter = config.device("meter1")
    by_name = {r.name: r for r in meter.registers}
    assert by_name["breaker_closed"].table is Table.COIL
    assert by_name["breaker_closed"].address == 9
    assert by_name["serial_number"].address == 0x100
    assert by_name["alarm_overvoltage"].bit == 3
    assert by_name["current_l1"].data_type == "float"
    assert by_name["current_l1"].type == "float32"


def test_example_yaml_takes_secrets_from_environment() -> None:
    env = {
        "MQTT_URL": "mqtts://broker.example:8883",
        "MQTT_USERNAME": "plant",
        "MQTT_PASSWORD": "s3cret",
        "LARAVEL_API_URL": "https://em.example/api/readings",
        "LARAVEL_API_TOKEN": "1|abc",
    }
    config = load_config(ROOT / "config" / "example.yaml", env=env)
    assert config.mqtt.use_tls and config.mqtt.port == 8883
    assert (config.mqtt.username, config.mqtt.password) == ("plant", "s3cret")
    assert config.forward.api_url == "https://em.example/api/readings"
    assert config.forward.token == "1|abc"


def test_example_yaml_documents_every_option() -> None:
    """Each key the validator knows appears in example.yaml (the file is the reference)."""
    text = (ROOT / "config" / "example.yaml").read_text()
    for key in KNOWN_KEYS:
        assert f"{key}:" in text, key


KNOWN_KEYS = (
    *("site", "mqtt", "url", "client_id", "username", "password", "tls", "ca_file"),
    *("cert_file", "key_file", "insecure", "protocol", "qos", "retain", "per_register"),
    *("device_payload", "keepalive", "commands", "max_age", "max_payload_bytes", "buffer"),
    *("path", "max_readings", "metrics", "listen", "homeassistant", "discovery", "prefix"),
    *("logging", "level", "file", "max_bytes", "backup_count", "forward", "subscribe"),
    *("api_url", "token", "batch_url", "batch_size", "outbox", "outbox_max", "concurrency"),
    *("session_expiry", "timeout", "connections", "name", "type", "host", "port", "baudrate"),
    *("parity", "stopbits", "bytesize", "inter_frame_delay", "devices", "id", "connection"),
    *("unit", "byte_order", "word_order", "interval", "max_gap", "always_fc16"),
    *("turnaround_delay", "description", "registers", "parameter", "address", "table"),
    *("register_address", "data_type", "bit", "length", "scale", "offset", "deadband"),
    *("writable", "min", "max"),
    *("server_hostname", "bit_write"),
)


def test_demo_yaml() -> None:
    config = load_config(ROOT / "config" / "demo.yaml", env={})
    assert config.site == "demo"
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"
    (conn,) = config.connections
    assert (conn.type, conn.host, conn.port) == ("tcp", "127.0.0.1", 5020)
    meter, hvac = config.devices
    intervals = {r.interval_s for d in config.devices for r in d.registers}
    assert min(intervals) == 1.0 and max(intervals) == 5.0
    writable = {r.name: r for r in meter.registers if r.writable}
    assert writable["power_limit"].type == "float32"
    assert (writable["temperature_setpoint"].type, writable["temperature_setpoint"].scale) == (
        "int16",
        0.1,
    )
    assert writable["breaker_closed"].table is Table.COIL
    assert {r.type for r in meter.registers} >= {"float32", "uint16", "bool"}
    assert (hvac.byte_order, hvac.word_order) != (meter.byte_order, meter.word_order)
    assert load_config(ROOT / "config" / "demo.yaml", env={"MQTT_URL": "mqtt://b:1"}).mqtt.port == 1


# -- resolution of defaults ---------------------------------------------------------------


def test_device_defaults_flow_into_registers() -> None:
    config = load("""
        site: s
        connections: [{name: lan, host: h}]
        devices:
          - name: d
            byte_order: little
            word_order: little
            interval: 2s
            registers:
              - {name: a, address: 40001, type: float32}
              - {name: b, address: 40003, type: float32, byte_order: big, interval: 500ms}
        """)
    a, b = config.devices[0].registers
    assert (a.byte_order, a.word_order, a.interval_s) == ("little", "little", 2.0)
    assert (b.byte_order, b.word_order, b.interval_s) == ("big", "little", 0.5)


def test_register_fields_are_resolved() -> None:
    config = load("""
        site: s
        connections: [{name: lan, host: h, port: 1502}]
        devices:
          - name: d
            registers:
              - {name: v, address: 40001, data_type: Float, unit: V, description: volts}
        """)
    device = config.devices[0]
    (reg,) = device.registers
    assert device.unit_id == 1 and device.connection == "lan" and device.id is None
    assert device.interval_s == 30.0
    assert reg.parameter == "v"
    assert (reg.type, reg.data_type) == ("float32", "Float")
    assert reg.engineering_unit == "V" and reg.description == "volts"
    assert (reg.table, reg.address, reg.register_address) == (Table.HOLDING, 0, 40001)
    assert config.connections[0].port == 1502


def test_defaults_of_sections() -> None:
    config = load(BASE)
    assert config.mqtt.url == "mqtt://localhost:1883" and config.mqtt.protocol == "5"
    assert config.connections[0].port == 502 and config.connections[0].timeout_s == 3.0
    assert config.commands.max_age_s == 30.0
    assert config.forward.api_url is None and config.logging.level == "INFO"


@pytest.mark.parametrize(
    ("written", "expected"),
    [("5", "5"), ('"5"', "5"), ("3.1.1", "3.1.1"), ('"3.1.1"', "3.1.1"), ("311", "3.1.1")],
)
def test_protocol_spellings(written: str, expected: str) -> None:
    assert load(BASE + f"mqtt: {{protocol: {written}}}\n").mqtt.protocol == expected


def test_bits_and_coils_default_to_bool() -> None:
    config = load("""
        site: s
        connections: [{name: lan, host: h}]
        devices:
          - name: d
            registers:
              - {name: c, address: 00001}
              - {name: b, address: 40001, bit: 15}
              - {name: t, table: discrete, address: 4}
        """)
    assert [r.type for r in config.devices[0].registers] == ["bool", "bool", "bool"]
    assert [r.data_type for r in config.devices[0].registers] == ["bool", "bool", "bool"]


def test_merge_keys_share_settings_without_duplicate_complaints() -> None:
    text = """
        site: s
        connections: [{name: lan, host: h}]
        devices:
          - name: d
            registers:
              - &a {name: a, address: 40001, type: float32, unit: V, scale: 2}
              - {<<: *a, name: b, address: 40003, scale: 3}
        """
    a, b = load(text).devices[0].registers
    assert (b.name, b.address, b.scale, b.engineering_unit, b.type) == ("b", 2, 3.0, "V", "float32")
    assert a.scale == 2.0


def test_a_key_written_twice_beside_a_merge_is_still_a_duplicate() -> None:
    text = """
        site: s
        connections: [{name: lan, host: h}]
        defaults: &a {name: a, address: 40001, type: float32}
        devices:
          - name: d
            registers:
              - {<<: *a, name: b, scale: 2, scale: 3}
        """
    assert "devices[0].registers[0].scale (line 8): duplicate key (first at line 8)" in problems(
        text
    )


def test_a_merged_mapping_reached_twice_through_an_alias_reports_no_duplicate() -> None:
    # The second visit sees the mapping already flattened: the keys merged in on the first
    # visit must still count as merged, not as written twice.
    text = """
        site: s
        connections: [{name: lan, host: h}]
        base: &b {address: 40001, type: float32}
        devices:
          - name: d
            registers:
              - &r {<<: *b, name: a, address: 40003}
          - name: e
            registers: [*r]
        """
    assert not [p for p in problems(text) if "duplicate key" in p]


def test_problems_in_a_big_config_name_their_line() -> None:
    # The fast paths for big register lists (libyaml, remembered scalar tags, plain strings
    # taken as they are) must keep every line mark.
    rows = [f"      - {{name: r{i}, address: {40001 + 2 * i}, type: float32}}" for i in range(3000)]
    rows[2500] = "      - {name: r2500, address: 40001, type: flot32}"
    rows[2700] = "      - {name: r2700, address: 40001, type: float32, colour: red}"
    text = BASE.replace("      - {name: v, address: 40001, type: float32}\n", "\n".join(rows))
    first_row = BASE.splitlines().index("    registers:") + 2
    found = problems(text)
    assert any(
        p.startswith(
            f"devices[0].registers[2500].type (line {first_row + 2500}): unknown type 'flot32'"
        )
        for p in found
    ), found
    assert any(
        p.startswith(f"devices[0].registers[2700].colour (line {first_row + 2700}): unknown key")
        for p in found
    ), found


# -- the YAML octal trap -------------------------------------------------------------------


def test_unquoted_leading_zero_addresses_are_read_as_written() -> None:
    config = load("""
        site: s
        connections: [{name: lan, host: h}]
        devices:
          - name: d
            registers:
              - {name: c10, address: 00010}
              - {name: c8, address: 00008}
              - {name: t, table: coil, address: 0010}
              - {name: r, address: 40001, type: uint16, register_address: 00010}
              - {name: q, address: "00012"}
        """)
    c10, c8, t, r, q = config.devices[0].registers
    assert (c10.table, c10.address, c10.register_address) == (Table.COIL, 9, 10)
    assert (c8.address, c8.register_address) == (7, 8)  # 00008 is not even valid octal
    assert (t.address, t.register_address) == (10, 10)
    assert r.register_address == 10
    assert (q.address, q.register_address) == (11, 12)


# -- ${VAR} --------------------------------------------------------------------------------


ENV_CONFIG = """
site: ${SITE:-plant9}
mqtt:
  url: mqtt://${BROKER:-localhost}:${BROKER_PORT-1884}
  username: ${MQTT_USERNAME}
  password: ${MQTT_PASSWORD}
  retain: ${RETAIN:-false}
  client_id: "$${literal} and $5"
connections: [{name: lan, host: "${GW:-10.0.0.1}", port: "${GW_PORT:-502}", timeout: "${T:-2s}"}]
devices:
  - name: d
    unit: ${UNIT:-3}
    registers: [{name: v, address: "${ADDR:-40001}", type: float32}]
"""


def test_env_defaults() -> None:
    config = load(ENV_CONFIG)
    assert config.site == "plant9"
    assert config.mqtt.url == "mqtt://localhost:1884"
    assert config.mqtt.username is None and config.mqtt.password is None
    assert config.mqtt.retain is False
    assert config.mqtt.client_id == "${literal} and $5"
    conn = config.connections[0]
    assert (conn.host, conn.port, conn.timeout_s) == ("10.0.0.1", 502, 2.0)
    assert config.devices[0].unit_id == 3
    assert config.devices[0].registers[0].register_address == 40001


def test_env_values_take_the_field_type() -> None:
    env = {
        "SITE": "p2",
        "BROKER": "b",
        "BROKER_PORT": "",  # set but empty: `-` keeps the empty value, `:-` would not
        "MQTT_USERNAME": "u",
        "MQTT_PASSWORD": "",
        "RETAIN": "true",
        "GW_PORT": "1502",
        "T": "750ms",
        "UNIT": "7",
        "ADDR": "30001",
    }
    config = load(ENV_CONFIG, env)
    assert config.site == "p2" and config.mqtt.url == "mqtt://b:"
    assert config.mqtt.username == "u" and config.mqtt.password is None
    assert config.mqtt.retain is True
    assert config.connections[0].port == 1502 and config.connections[0].timeout_s == 0.75
    assert config.devices[0].unit_id == 7
    assert config.devices[0].registers[0].table is Table.INPUT


def test_env_text_stays_text_where_text_is_expected() -> None:
    config = load(BASE + "mqtt: {password: '${P}', client_id: '${C}'}\n", {"P": "12345", "C": "on"})
    assert config.mqtt.password == "12345" and config.mqtt.client_id == "on"


def test_laravel_environment_fills_forward() -> None:
    env = {"LARAVEL_API_URL": "http://127.0.0.1:8080/api/readings", "LARAVEL_API_TOKEN": "t"}
    config = load(BASE, env)
    assert config.forward.api_url == "http://127.0.0.1:8080/api/readings"
    assert config.forward.token == "t"
    kept = load(BASE + "forward: {api_url: 'https://x/api/readings', token: mine}\n", env)
    assert (kept.forward.api_url, kept.forward.token) == ("https://x/api/readings", "mine")


def test_log_level_environment_fills_logging() -> None:
    assert load(BASE, {"LOG_LEVEL": "debug"}).logging.level == "DEBUG"
    assert load(BASE + "logging: {level: error}\n", {"LOG_LEVEL": "debug"}).logging.level == "ERROR"


def test_bad_environment_value_names_the_variable() -> None:
    assert problems(BASE, {"LARAVEL_API_URL": "ftp://x"}) == [
        "forward.api_url: expected an http:// or https:// url, got 'ftp://x' "
        "(from $LARAVEL_API_URL)"
    ]


# -- resolve_config_path -------------------------------------------------------------------


def test_resolve_config_path() -> None:
    assert resolve_config_path("a.yaml", {"MODBUS_CONFIG": "b.yaml"}) == "a.yaml"
    assert resolve_config_path(None, {"MODBUS_CONFIG": "b.yaml"}) == "b.yaml"
    with pytest.raises(ConfigError, match="pass -c CONFIG or set MODBUS_CONFIG"):
        resolve_config_path(None, {})
    with pytest.raises(ConfigError):
        resolve_config_path("", {"MODBUS_CONFIG": "  "})


# -- reading the file ----------------------------------------------------------------------


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"site: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(latin, env={})
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="the config is empty"):
        load_config(empty, env={})


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_config(str(path), env={}).site == "plant1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("site: [a\n", "YAML syntax error at line 2"),
        ("site: a\n  b: c\n", "YAML syntax error at line 2"),
        ("site: a\n\tmqtt: b\n", "tabs"),
        ("site: a\n---\nsite: b\n", "YAML syntax error"),
        ("site: !!python/object/apply:os.system ['true']\n", "unsupported tag"),
        ("site: !!python/name:os.system\n", "cannot read this value"),
        ("site: 2001-13-45\n", "cannot read this value"),
        ("a: &a [*a]\n", "an alias refers to itself"),
        ("[" * 3000 + "]" * 3000, "nested too deeply"),
        ("site: a\nsite: b\n", "site (line 2): duplicate key (first at line 1)"),
        ("? [a, b]\n: c\n", "a key must be a plain name"),
    ],
)
def test_unreadable_yaml(text: str, fragment: str) -> None:
    assert any(fragment in p for p in problems(text)), problems(text)


def test_alias_bomb_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_source, "MAX_NODES", 10_000)
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert problems("\n".join(lines)) == ["the config has more than 10000 values"]
