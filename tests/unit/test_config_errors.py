"""Invalid configs: every problem reported, one line each, with its path; no other exception."""

from __future__ import annotations

import contextlib
import copy
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.load import load_config, load_config_text
from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.config.validate import validate
from modbus_mqtt_bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HEAD = """\
site: plant1
connections:
  - {name: lan, host: 10.0.0.5}
  - {name: bus1, type: rtu, port: /dev/ttyUSB0}
devices:
"""


def problems(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """`path: message` of each problem (lines are checked by the golden cases)."""
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), {} if env is None else env)
    return [f"{p.path}: {p.message}" if p.path else p.message for p in info.value.problems]


def device(registers: str, extra: str = "") -> str:
    """HEAD plus one device `d` on `lan` with the given register flow mappings."""
    regs = "\n".join(f"      - {line.strip()}" for line in registers.strip().splitlines())
    return HEAD + f"  - name: d\n    connection: lan\n{extra}    registers:\n{regs}\n"


R = "devices[0].registers"


@pytest.mark.parametrize(
    ("registers", "expected"),
    [
        (
            "{name: v, address: 40001, type: flot}",
            f"{R}[0].type: unknown type 'flot' (did you mean float32?)",
        ),
        (
            "{name: v, address: 40001, data_type: integr}",
            f"{R}[0].data_type: unknown type 'integr' (did you mean int16?)",
        ),
        (
            "{name: v, address: 40001, type: float32, data_type: float}",
            f"{R}[0].data_type: give either type or data_type, not both",
        ),
        (
            "{name: v, address: 40001}",
            f"{R}[0].type: missing required key (one of bool, int16, uint16, int32, uint32, "
            "int64, uint64, float32, float64, string)",
        ),
        (
            "{name: s, address: 40001, type: string}",
            f"{R}[0].length: required for type string (its length in registers)",
        ),
        (
            "{name: s, address: 40001, type: uint16, length: 2}",
            f"{R}[0].length: applies to type string only, not uint16",
        ),
        ("{name: b, address: 40001, bit: 16}", f"{R}[0].bit: 16 is out of range (0..15)"),
        (
            "{name: b, address: 00001, bit: 1}",
            f"{R}[0].bit: a coil is a single bit already: remove bit",
        ),
        (
            "{name: b, address: 40001, type: uint16, bit: 1}",
            f"{R}[0].bit: bit needs type bool, not uint16",
        ),
        (
            "{name: b, address: 40001, type: bool}",
            f"{R}[0].type: type bool on a holding register needs bit: N (0..15)",
        ),
        (
            "{name: c, address: 00001, type: uint16}",
            f"{R}[0].type: a coil holds one bit: use type bool, not uint16",
        ),
        (
            "{name: w, address: 30001, type: uint16, writable: true}",
            f"{R}[0].writable: an input register is read-only: only a holding register can be "
            "written",
        ),
        (
            "{name: w, address: 10001, writable: true}",
            f"{R}[0].writable: a discrete input is read-only: only a coil can be written",
        ),
        (
            "{name: m, address: 40001, type: int16, min: 10, max: 5}",
            f"{R}[0].min: min 10 is greater than max 5",
        ),
        ("{name: m, address: 40001, type: int16, scale: 0}", f"{R}[0].scale: must not be 0"),
        (
            "{name: m, address: 00001, scale: 2}",
            f"{R}[0].scale: applies to numeric types only, not bool",
        ),
        (
            "{name: m, address: 40001, type: int16, scale: .nan}",
            f"{R}[0].scale: expected a finite number, got nan",
        ),
        (
            "{name: m, address: 40001, type: uint16, byte_order: middle}",
            f"{R}[0].byte_order: expected one of big, little, got 'middle'",
        ),
        (
            "{name: m, address: 40001, type: uint16, word_order: lttle}",
            f"{R}[0].word_order: expected one of big, little, got 'lttle' (did you mean little?)",
        ),
        (
            "{name: m, address: 465537, type: uint16}",
            f"{R}[0].address: Modicon address 465537 is out of range (at most 465536)",
        ),
        (
            "{name: m, table: holding, address: 70000, type: uint16}",
            f"{R}[0].address: address 70000 is out of range (0..65535 with table:)",
        ),
        (
            "{name: m, table: holding, address: 65535, type: float32}",
            f"{R}[0].address: float32 at holding register 65535 spans 2, past 65535",
        ),
        (
            "{name: m, table: holdings, address: 1, type: uint16}",
            f"{R}[0].table: unknown table 'holdings' (did you mean holding?); use holding, "
            "input, coil or discrete",
        ),
        (
            "{name: m, address: 40001, type: uint16, intervall: 5s}",
            f"{R}[0].intervall: unknown key (did you mean interval?)",
        ),
        (
            "{name: m, address: 40001, type: uint16, interval: 0}",
            f"{R}[0].interval: must be longer than 0",
        ),
        (
            "{name: m, address: 40001, type: uint16, max_age: 5x}",
            f"{R}[0].max_age: unknown unit 'x' in duration '5x' (use seconds or a number with "
            "a unit: 500ms, 5s, 1min, 2h, 1d)",
        ),
        (
            "{name: status, address: 40001, type: uint16}",
            f"{R}[0].name: 'status' is reserved: "
            "{site}/{device}/status is the device's availability topic",
        ),
        (
            "{name: set, address: 40001, type: uint16}",
            f"{R}[0].name: 'set' is reserved: "
            "{site}/{device}/set takes write commands for several registers",
        ),
        (
            "{name: a/b, address: 40001, type: uint16}",
            f"{R}[0].name: 'a/b' contains '/', which cannot appear in an MQTT topic level",
        ),
        (
            "{name: a+, address: 40001, type: uint16}",
            f"{R}[0].name: 'a+' contains '+', which cannot appear in an MQTT topic level",
        ),
        (
            "{name: '#', address: 40001, type: uint16}",
            f"{R}[0].name: '#' contains '#', which cannot appear in an MQTT topic level",
        ),
        ("{name: '', address: 40001, type: uint16}", f"{R}[0].name: must not be empty"),
        ("{address: 40001, type: uint16}", f"{R}[0].name: missing required key"),
        ("{name: x, type: uint16}", f"{R}[0].address: missing required key"),
        ("just-a-name", f"{R}[0]: expected a mapping, got 'just-a-name'"),
    ],
)
def test_register_problems(registers: str, expected: str) -> None:
    assert problems(device(registers)) == [expected]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    unit: 256\n", "devices[0].unit: 256 is out of range (0..255)"),
        (
            "    byte_order: BIG-ENDIAN\n",
            "devices[0].byte_order: expected one of big, little, got 'BIG-ENDIAN'",
        ),
        (
            "    interval: soon\n",
            "devices[0].interval: invalid duration 'soon' (use seconds or "
            "a number with a unit: 500ms, 5s, 1min, 2h, 1d)",
        ),
        ("    max_gap: -1\n", "devices[0].max_gap: -1 is out of range (0..125)"),
        ("    id: one\n", "devices[0].id: expected an integer, got 'one'"),
        (
            "    polling: 5s\n",
            "devices[0].polling: unknown key (known: always_fc16, byte_order, "
            "connection, description, id, interval, max_gap, name, registers, turnaround_delay, "
            "unit, word_order)",
        ),
    ],
)
def test_device_problems(extra: str, expected: str) -> None:
    assert problems(device("{name: v, address: 40001, type: uint16}", extra)) == [expected]


def test_device_level_problems() -> None:
    text = HEAD + textwrap.dedent("""\
          - name: bridge
            connection: lna
            registers: [{name: v, address: 40001, type: uint16}]
          - name: d2
            connection: bus1
            unit: 0
            registers: []
          - name: d3
            registers: [{name: v, address: 40001, type: uint16}]
          - name: d4
            connection: bus1
            unit: 248
          - name: d4
            connection: bus1
            registers: [{name: v, address: 40001, type: uint16}]
        """)
    assert problems(text) == [
        "devices[0].name: 'bridge' is reserved: {site}/bridge/status is the bridge's own status "
        "topic",
        "devices[1].registers: a device needs at least one register",
        "devices[2].connection: missing required key (one of: lan, bus1)",
        "devices[3].registers: missing required key: a device needs at least one register",
        # then the cross-entry checks, in file order
        "devices[0].connection: unknown connection 'lna' (did you mean lan?)",
        "devices[1].unit: unit 0 is broadcast on a serial bus; use 1..247",
        "devices[3].unit: serial unit ids are 1..247, not 248",
        "devices[4].name: duplicate device name 'd4' (first: devices[3], line 15)",
    ]


def test_unknown_connection_suggests_and_runs_after_shape() -> None:
    text = device("{name: v, address: 40001, type: flot}").replace(
        "connection: lan", "connection: lna"
    )
    assert problems(text) == [
        f"{R}[0].type: unknown type 'flot' (did you mean float32?)",
        "devices[0].connection: unknown connection 'lna' (did you mean lan?)",
    ]


def test_single_connection_is_the_default() -> None:
    text = """
        site: s
        connections: [{name: only, host: h}]
        devices: [{name: d, registers: [{name: v, address: 40001, type: uint16}]}]
        """
    assert load_config_text(textwrap.dedent(text), {}).devices[0].connection == "only"


def test_duplicate_registers_and_connections() -> None:
    text = HEAD.replace("/dev/ttyUSB0}", "/dev/ttyUSB0}\n  - {name: lan, host: other}") + (
        "  - name: d\n    connection: lan\n    registers:\n"
        "      - {name: v, address: 40001, type: uint16}\n"
        "      - {name: v, address: 40002, type: uint16}\n"
    )
    assert problems(text) == [
        "connections[2].name: duplicate connection name 'lan' (first: connections[0], line 3)",
        f"{R}[1].name: duplicate register name 'v' (first: {R}[0], line 10)",
    ]


def test_overlapping_writable_registers() -> None:
    text = device("""
        {name: a, address: 40001, type: float32, writable: true}
        {name: b, address: 40002, type: uint16, writable: true}
        {name: c, address: 40003, type: uint16, writable: true}
        {name: r, address: 40001, type: uint16}
        {name: b0, address: 40010, bit: 0, writable: true}
        {name: b1, address: 40010, bit: 1, writable: true}
        {name: b1again, address: 40010, bit: 1, writable: true}
        {name: whole, address: 40010, type: uint16, writable: true}
        {name: coil, address: 00001, writable: true}
        {name: coil2, table: coil, address: 0, writable: true}
    """)
    assert problems(text) == [
        f"{R}[1].address: writable register 'b' (holding register 1) overlaps writable "
        f"register 'a' (holding registers 0..1, {R}[0])",
        f"{R}[6].address: writable register 'b1again' (holding register 9 bit 1) overlaps "
        f"writable register 'b1' (holding register 9 bit 1, {R}[5])",
        f"{R}[7].address: writable register 'whole' (holding register 9) overlaps writable "
        f"register 'b0' (holding register 9 bit 0, {R}[4])",
        f"{R}[9].address: writable register 'coil2' (coil 0) overlaps writable register "
        f"'coil' (coil 0, {R}[8])",
    ]


def test_writable_overlap_spans_devices_on_one_unit() -> None:
    text = device("{name: a, address: 40001, type: uint16, writable: true}") + (
        "  - name: e\n    connection: lan\n    registers:\n"
        "      - {name: a, address: 40001, type: uint16, writable: true}\n"
        "  - name: f\n    connection: lan\n    unit: 2\n    registers:\n"
        "      - {name: a, address: 40001, type: uint16, writable: true}\n"
    )
    assert problems(text) == [
        "devices[1].registers[0].address: writable register 'a' (holding register 0) overlaps "
        f"writable register 'a' (holding register 0, {R}[0])"
    ]


VALID_DEVICE = (
    "devices: [{name: d, connection: lan, registers: [{name: v, address: 40001, type: uint16}]}]\n"
)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "mqtt: {url: 'http://broker:1883'}",
            "mqtt.url: unsupported url 'http://broker:1883': "
            "use mqtt://host:port or mqtts://host:port",
        ),
        (
            "mqtt: {url: 'mqtt://u:p@broker'}",
            "mqtt.url: put credentials in mqtt.username and mqtt.password, not in the url",
        ),
        (
            "mqtt: {url: 'mqtt://broker:99999'}",
            "mqtt.url: invalid url 'mqtt://broker:99999': Port out of range 0-65535",
        ),
        ("mqtt: {url: 'mqtt://:1883'}", "mqtt.url: url 'mqtt://:1883' has no host"),
        ("mqtt: {url: 'mqtt://b/x'}", "mqtt.url: url 'mqtt://b/x' must be only scheme://host:port"),
        ("mqtt: {qos: 3}", "mqtt.qos: 3 is out of range (0..2)"),
        ("mqtt: {qos: true}", "mqtt.qos: expected an integer, got true"),
        ("mqtt: {protocol: 4}", "mqtt.protocol: expected one of 5, 3.1.1, got 4"),
        (
            "mqtt: {protocol: 3.1}",
            "mqtt.protocol: expected one of 5, 3.1.1, got 3.1 (did you mean 3.1.1?)",
        ),
        ("mqtt: {retain: 'yes please'}", "mqtt.retain: expected true or false, got 'yes please'"),
        (
            "mqtt: {per_register: false}",
            "mqtt.per_register: per_register and device_payload are both false: nothing is sent",
        ),
        (
            "mqtt: {tls: {ca_file: ca.pem}}",
            "mqtt.tls: TLS options are set but the url is not mqtts://",
        ),
        (
            "mqtt: {url: 'mqtts://b', tls: {key_file: k.pem}}",
            "mqtt.tls.key_file: key_file needs cert_file (the client certificate)",
        ),
        ("mqtt: {keepalive: 1d}", "mqtt.keepalive: MQTT allows at most 65535 s (18h12min15s)"),
        ("mqtt: {urls: x}", "mqtt.urls: unknown key (did you mean url?)"),
        ("mqtt: mqtt://b", "mqtt: expected a mapping, got 'mqtt://b'"),
        ("commands: {max_age: -1}", "commands.max_age: duration -1 must not be negative"),
        ("buffer: {max_readings: 0}", "buffer.max_readings: 0 is out of range (at least 1)"),
        ("metrics: {listen: 9105}", "metrics.listen: expected text, got 9105"),
        (
            "metrics: {listen: localhost}",
            "metrics.listen: expected host:port (e.g. 127.0.0.1:9105), got 'localhost'",
        ),
        (
            "homeassistant: {prefix: 'ha/#'}",
            "homeassistant.prefix: 'ha/#': level '#' contains "
            "'#', which cannot appear in an MQTT topic level",
        ),
        (
            "logging: {level: loud}",
            "logging.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'",
        ),
        (
            "forward: {api_url: 'ftp://x'}",
            "forward.api_url: expected an http:// or https:// url, got 'ftp://x'",
        ),
        (
            "forward: {subscribe: 'a/#/b'}",
            "forward.subscribe: 'a/#/b': '#' may only be the last level",
        ),
        (
            "forward: {subscribe: 'a/b+'}",
            "forward.subscribe: 'a/b+': a wildcard must fill a whole topic level",
        ),
        (
            "forward: {subscribe: '$share/x'}",
            "forward.subscribe: '$share/x': use $share/GROUP/TOPIC-FILTER",
        ),
        ("forward: {concurrency: 0}", "forward.concurrency: 0 is out of range (1..256)"),
        (
            "colour: blue",
            "colour: unknown key (known: buffer, commands, connections, devices, "
            "forward, homeassistant, logging, metrics, mqtt, site)",
        ),
        ("mqt: {}", "mqt: unknown key (did you mean mqtt?)"),
    ],
)
def test_section_problems(section: str, expected: str) -> None:
    text = "site: s\nconnections: [{name: lan, host: h}]\n" + VALID_DEVICE + section + "\n"
    assert problems(text) == [expected]


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (
            "{name: c, type: udp, host: h}",
            "connections[0].type: expected one of tcp, rtu, rtu-over-tcp, got 'udp'",
        ),
        ("{name: c, type: tcp}", "connections[0].host: missing required key for a tcp connection"),
        (
            "{name: c, type: rtu-over-tcp}",
            "connections[0].host: missing required key for a rtu-over-tcp connection",
        ),
        (
            "{name: c, type: rtu}",
            "connections[0].port: missing required key (the serial port, e.g. /dev/ttyUSB0)",
        ),
        (
            "{name: c, type: rtu, port: 502}",
            "connections[0].port: expected a serial port like /dev/ttyUSB0 or COM3, got 502",
        ),
        ("{name: c, host: h, port: 0}", "connections[0].port: 0 is out of range (1..65535)"),
        (
            "{name: c, host: 'tcp://h'}",
            "connections[0].host: expected a host name or IP address, got 'tcp://h'",
        ),
        (
            "{name: c, host: h, baudrate: 9600}",
            "connections[0].baudrate: applies to rtu and rtu-over-tcp connections only, not tcp",
        ),
        (
            "{name: c, type: rtu, port: COM3, host: h}",
            "connections[0].host: applies to tcp and rtu-over-tcp connections (rtu uses port:)",
        ),
        (
            "{name: c, type: rtu, port: COM3, tls: true}",
            "connections[0].tls: applies to tcp connections only, not rtu",
        ),
        (
            "{name: c, host: h, inter_frame_delay: 5ms}",
            "connections[0].inter_frame_delay: applies to rtu and rtu-over-tcp connections only",
        ),
        (
            "{name: c, type: rtu, port: COM3, parity: X}",
            "connections[0].parity: expected one of N, E, O, got 'X'",
        ),
        (
            "{name: c, type: rtu, port: COM3, stopbits: 3}",
            "connections[0].stopbits: 3 is out of range (1..2)",
        ),
        (
            "{name: c, host: h, timout: 3}",
            "connections[0].timout: unknown key (did you mean timeout?)",
        ),
        ("{host: h}", "connections[0].name: missing required key"),
    ],
)
def test_connection_problems(connection: str, expected: str) -> None:
    text = f"site: s\nconnections: [{connection}]\n"
    text += "devices: [{name: d, connection: c,\n"
    text += "  registers: [{name: v, address: 40001, type: uint16}]}]\n"
    found = problems(text)
    assert found[0] == expected
    assert len(found) == 1 or found[1:] == [
        "devices[0].connection: unknown connection 'c' (no connections are defined)"
    ]


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        ("'a/b'", "site: 'a/b' contains '/', which cannot appear in an MQTT topic level"),
        ("'$SYS'", "site: '$SYS' starts with '$', which MQTT reserves for broker topics"),
        ("' plant'", "site: ' plant' has leading or trailing spaces"),
        ("12", "site: expected text, got 12"),
    ],
)
def test_site_problems(site: str, expected: str) -> None:
    assert problems(f"site: {site}\nconnections: [{{name: lan, host: h}}]\n" + VALID_DEVICE) == [
        expected
    ]


def test_missing_everything() -> None:
    assert problems("mqtt: {}\n") == ["site: missing required key"]
    assert problems("- 1\n") == ["[0]: expected a mapping (one device)"]
    assert problems("just text\n") == [
        "the config must be a mapping (site:, mqtt:, ...), got 'just text'"
    ]


def test_every_problem_is_reported_once_each() -> None:
    text = """\
        site: a/b
        mqtt: {url: 'ws://x', qos: 5, protocol: 4}
        connections:
          - {name: lan, type: udp, host: h}
        devices:
          - name: bridge
            connection: lna
            registers:
              - {name: status, address: 50001, type: flot}
              - {name: s, address: 40001, type: string}
        """
    found = problems(text, {"LOG_LEVEL": "INFO"})
    assert len(found) == 11, found
    assert found[-1] == "devices[0].connection: unknown connection 'lna' (did you mean lan?)"


def test_unset_variable_names_path_and_variable() -> None:
    text = (
        HEAD
        + "  - {name: d, connection: lan, unit: '${UNIT}',\n"
        + "     registers: [{name: v, address: 40001, type: uint16}]}\n"
    )
    assert problems(text) == [
        "devices[0].unit: environment variable UNIT is not set (set it, or write ${UNIT:-default})"
    ]
    assert problems(text.replace("${UNIT}", "${UNIT")) == [
        "devices[0].unit: unterminated ${ (write $${ for a literal ${)"
    ]
    assert problems(text.replace("${UNIT}", "${1X}")) == [
        "devices[0].unit: invalid ${1X}: use ${NAME} or ${NAME:-default}"
    ]


# -- never another exception ----------------------------------------------------------------

KEYS = (
    "site", "mqtt", "url", "devices", "connections", "registers", "name", "address", "type",
    "data_type", "table", "bit", "length", "writable", "min", "max", "unit", "host", "port",
    "connection", "interval", "scale", "tls", "protocol", "qos", "forward", "api_url",
    "register_address", "byte_order", "word_order", "timeout", "device_id", "ip", "slave_id",
    "parameter",
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        ["40001", "00010", "465537", "0x10", "5s", "-1s", "float32", "flot", "string", "bool",
         "tcp", "rtu", "rtu-over-tcp", "holding", "coil", "big", "little", "lan", "mqtt://b",
         "mqtts://b:1", "${X}", "${X:-1}", "${", "status", "set", "bridge", "a/b", "3.1.1"]
    ),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=25,
)
DUMPER = yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper
EXAMPLE = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
EXAMPLE_TEXT = (ROOT / "config" / "example.yaml").read_text()


def _outcome(text: str) -> Config | ConfigError:
    try:
        return load_config_text(text, {})
    except ConfigError as exc:
        assert exc.problems, "a ConfigError always carries its problems"
        for problem in exc.problems:
            assert "\n" not in str(problem), "every problem is one line"
        return exc


@st.composite
def mutated_example(draw: st.DrawFn) -> Any:
    """The example config with a few values swapped for random ones, to reach deep checks."""
    raw: Any = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        node = raw
        while isinstance(node, dict | list) and node:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            if draw(st.booleans()) or not isinstance(node[key], dict | list):
                node[key] = draw(VALUES)
                break
            node = node[key]
    return raw


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.one_of(VALUES, mutated_example()))
def test_random_mappings_give_config_or_config_error(raw: Any) -> None:
    try:
        text = yaml.dump(raw, Dumper=DUMPER, allow_unicode=True)
    except yaml.YAMLError:
        return
    _outcome(text)
    with contextlib.suppress(ConfigError):
        validate(raw)


@FAST
@given(st.text(max_size=200))
def test_random_text_gives_config_or_config_error(text: str) -> None:
    _outcome(text)


@FAST
@given(st.data())
def test_damaged_example_gives_config_or_config_error(data: st.DataObject) -> None:
    lines = EXAMPLE_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "cut", "insert"]))
        if action == "drop":
            del lines[i]
        elif action == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        else:
            lines.insert(i, data.draw(st.text(alphabet=" :-[]{}'\"#&*!|>%@`,?\tab0", max_size=12)))
    _outcome("\n".join(lines))


@settings(max_examples=20, deadline=None)
@given(st.binary(max_size=64))
def test_random_files_give_config_or_config_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_config(path, env={})
