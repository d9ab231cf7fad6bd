"""Registers alike but for name and address are read once (RegisterReader): the outcome, every
Register field and every problem with its line, is what reading each one alone gives."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from modbus_mqtt_bridge.config import validate_registers
from modbus_mqtt_bridge.config.load import load_config_text
from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.config.validate import validate
from modbus_mqtt_bridge.config.yaml_source import _Loader
from modbus_mqtt_bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HEAD = """\
site: plant1
connections:
  - {name: lan, host: 10.0.0.5}
devices:
  - name: d
    connection: lan
    registers:
"""


def outcome(text: str, env: Mapping[str, str]) -> Config | list[str]:
    try:
        return load_config_text(text, env)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]


def each_alone(
    monkeypatch: pytest.MonkeyPatch, text: str, env: Mapping[str, str] | None = None
) -> tuple[Config | list[str], Config | list[str]]:
    """(as loaded, as loaded with every register read by `read_register` on its own)."""
    env = {} if env is None else env
    loaded = outcome(text, env)
    with monkeypatch.context() as m:
        m.setattr(
            validate_registers.RegisterReader,
            "read",
            lambda self, path, raw: validate_registers.read_register(
                path, raw, self.problems, self.defaults
            ),
        )
        alone = outcome(text, env)
    return loaded, alone


def registers(*rows: str) -> str:
    return HEAD + "".join(f"      - {row}\n" for row in rows)


FLOAT = "type: float32, unit: V"
ALIKE = [
    # a later register's own name and address are still checked
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: b/c, address: 40003, {FLOAT}}}"),
    registers(
        f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: status, address: 40003, {FLOAT}}}"
    ),
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: 7, address: 40003, {FLOAT}}}"),
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{address: 40003, {FLOAT}}}"),
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: b, address: 4x003, {FLOAT}}}"),
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: b, address: 30003, {FLOAT}}}"),
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: b, {FLOAT}}}"),
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: a, address: 40003, {FLOAT}}}"),
    # a span past the last address depends on the address, not only on the shape
    registers(
        "{name: a, address: 40001, type: float64}", "{name: b, address: 465533, type: float64}"
    ),
    registers(
        "{name: a, address: 0, table: input, type: int32}",
        "{name: b, address: 65535, table: input, type: int32}",
    ),
    # the parameter and register_address default to each register's own name and address
    registers(f"{{name: a, address: 40001, {FLOAT}}}", f"{{name: b, address: 40003, {FLOAT}}}"),
    registers("{name: a, address: 00010}", "{name: b, address: 00011}"),
    registers("{name: a, address: 5, table: coil}", "{name: b, address: 0x6, table: coils}"),
    registers("{name: a, address: 40001, bit: 0}", "{name: b, address: 40001, bit: 1}"),
    registers(
        f"{{name: a, parameter: P, address: 40001, register_address: 7, {FLOAT}}}",
        f"{{name: b, parameter: P, address: 40003, register_address: 7, {FLOAT}}}",
    ),
    registers(
        "{name: a, address: 40001, type: uint16, parameter: null, register_address: null}",
        "{name: b, address: 40002, type: uint16, parameter: null, register_address: null}",
    ),
    # values equal in Python but not alike in YAML: 1, 1.0 and true
    registers(
        "{name: a, address: 40001, type: uint16, writable: true}",
        "{name: b, address: 40002, type: uint16, writable: 1}",
    ),
    registers(
        "{name: a, address: 40001, type: uint16, scale: 1}",
        "{name: b, address: 40002, type: uint16, scale: true}",
    ),
    registers(
        "{name: a, address: 40001, type: uint16, interval: 1}",
        "{name: b, address: 40002, type: uint16, interval: 1.0}",
        "{name: c, address: 40003, type: uint16, interval: true}",
    ),
    # one shape, then the next register of it, then another shape
    registers(
        f"{{name: a, address: 40001, {FLOAT}}}",
        "{name: b, address: 40003, type: float32, unit: A}",
        f"{{name: c, address: 40005, {FLOAT}, colour: red}}",
        f"{{name: d, address: 40007, {FLOAT}}}",
    ),
]


@pytest.mark.parametrize("text", ALIKE)
def test_registers_alike_read_as_each_would_alone(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    loaded, alone = each_alone(monkeypatch, text)
    assert loaded == alone


def test_expanded_values_read_as_each_would_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    text = registers(
        f"{{name: a, address: 40001, {FLOAT}}}",
        "{name: b, address: 40003, type: float32, unit: ${UNIT}}",
        "{name: c, address: 40005, type: float32, unit: ${UNIT}}",
        "{name: d, address: 40007, type: float32, unit: ${UNSET}}",
        "{name: '${NAME}', address: '${ADDRESS}', type: float32, unit: ${UNIT}}",
    )
    env = {"UNIT": "V", "NAME": "e", "ADDRESS": "40009"}
    loaded, alone = each_alone(monkeypatch, text, env)
    assert loaded == alone
    assert isinstance(loaded, list) and len(loaded) == 1, loaded


def test_an_address_of_true_is_not_taken_for_1() -> None:
    # YAML gives an address as its text; data built in Python (or JSON) may hold 1 and True
    device = {
        "name": "d",
        "connection": "lan",
        "registers": [
            {"name": "a", "address": 1, "table": "coil"},
            {"name": "b", "address": True, "table": "coil"},
        ],
    }
    raw = {"site": "p", "connections": [{"name": "lan", "host": "h"}], "devices": [device]}
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert [str(p) for p in info.value.problems] == [
        "devices[0].registers[1].address: expected an address (e.g. 40001), got True"
    ]


def test_a_negative_zero_offset_is_not_taken_for_zero() -> None:
    # -0.0 == 0.0, so equal Configs would not tell them apart
    text = registers(
        "{name: a, address: 40001, type: int16, offset: 0.0}",
        "{name: b, address: 40002, type: int16, offset: -0.0}",
    )
    config = load_config_text(text, {})
    offsets = [math.copysign(1.0, r.offset) for r in config.devices[0].registers]
    assert offsets == [1.0, -1.0]


@pytest.mark.parametrize(
    "path",
    [
        "config/example.yaml",
        "config/demo.yaml",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "cases").glob("*/config.*")),
    ],
)
def test_shipped_and_golden_configs_read_as_each_would_alone(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    text = (ROOT / path).read_text()
    loaded, alone = each_alone(monkeypatch, text)
    assert loaded == alone


# -- the loader's remembered tags --------------------------------------------------------------


def tags(loader: type, text: str) -> list[str]:
    """Every node's tag, depth first."""
    found: list[str] = []
    pending = [yaml.compose(text, Loader=loader)]
    while pending:
        node = pending.pop()
        found.append(node.tag)
        if isinstance(node, yaml.MappingNode):
            pending.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(reversed(node.value))
    return found


def test_remembered_tags_are_the_safe_loaders() -> None:
    # The same text quoted and plain has different tags: the cache is keyed on both.
    text = textwrap.dedent("""\
        a: [1, '1', "1", 1, 1.5, '1.5', true, 'true', yes, ~, null, '', 2001-12-14, 010, 0x1F]
        b: [.inf, -.nan, 1_000, 12:30:00, '12:30:00', 0o10, +1, -1, =, '<<', x]
        base: &base {u: 1}
        c: {<<: *base, '1': 1, 1: '1', = : v}
        d: !!str 1
        e: [1, '1']
        """)
    assert tags(_Loader, text) == tags(yaml.SafeLoader, text)
