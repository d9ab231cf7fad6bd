"""Config keys of the write and link-security features: `connections[].tls` (Modbus/TCP
Security) and `registers[].bit_write`."""

from __future__ import annotations

import textwrap

import pytest

from modbus_mqtt_bridge.config.load import load_config_text
from modbus_mqtt_bridge.config.model import Config, ModbusTls
from modbus_mqtt_bridge.errors import ConfigError

REGISTER = "[{name: v, address: 40001, type: uint16}]"


def _config(connection: str, registers: str = REGISTER) -> str:
    return textwrap.dedent(f"""\
        site: s
        connections: [{connection}]
        devices: [{{name: d, connection: c, registers: {registers}}}]
        """)


def load(text: str) -> Config:
    return load_config_text(text, {})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_tls_true_verifies_against_the_system_cas_on_port_802() -> None:
    (conn,) = load(_config("{name: c, host: plc.example, tls: true}")).connections
    assert conn.tls == ModbusTls() and conn.port == 802


def test_tls_options() -> None:
    text = _config(
        "{name: c, host: 10.0.0.7, port: 8020, tls: {ca_file: /ca.pem, cert_file: /c.pem,"
        " key_file: /c.key, server_hostname: plc.example}}"
    )
    (conn,) = load(text).connections
    assert conn.tls == ModbusTls("/ca.pem", "/c.pem", "/c.key", "plc.example")
    assert conn.port == 8020


@pytest.mark.parametrize("off", ["tls: false", "tls: null", ""])
def test_no_tls_is_plaintext_on_502(off: str) -> None:
    (conn,) = load(_config(f"{{name: c, host: h, {off}}}".replace(", }", "}"))).connections
    assert conn.tls is None and conn.port == 502


@pytest.mark.parametrize(
    ("tls", "problem"),
    [
        ("yes-please", "connections[0].tls: expected true, false or a mapping"),
        ("{key_file: /k}", "connections[0].tls.key_file: key_file needs cert_file"),
        ("{ca: /ca.pem}", "connections[0].tls.ca: unknown key (known: ca_file"),
        ("{insecure: true}", "connections[0].tls.insecure: unknown key"),
        ("{server_hostname: 'a b'}", "connections[0].tls.server_hostname: expected a host"),
    ],
)
def test_tls_problems(tls: str, problem: str) -> None:
    found = problems(_config(f"{{name: c, host: h, tls: {tls}}}"))
    assert any(p.startswith(problem) for p in found), found


def test_tls_is_for_tcp_only() -> None:
    found = problems(_config("{name: c, type: rtu, port: /dev/ttyUSB0, tls: true}"))
    assert found == ["connections[0].tls: applies to tcp connections only, not rtu"]


def _bit(extra: str) -> str:
    return _config("{name: c, host: h}", f"[{{name: b, address: 40001, bit: 3{extra}}}]")


def test_bit_write_defaults_to_read_modify_write_and_takes_mask() -> None:
    (default,) = load(_bit(", writable: true")).devices[0].registers
    (masked,) = load(_bit(", writable: true, bit_write: mask")).devices[0].registers
    (rmw,) = load(_bit(", writable: true, bit_write: rmw")).devices[0].registers
    assert (default.bit_write, masked.bit_write, rmw.bit_write) == (
        "read-modify-write",
        "mask",
        "read-modify-write",
    )


@pytest.mark.parametrize(
    ("registers", "problem"),
    [
        (
            "[{name: b, address: 40001, bit: 3, writable: true, bit_write: fc22}]",
            "devices[0].registers[0].bit_write: expected one of read-modify-write, mask",
        ),
        (
            "[{name: b, address: 40001, type: uint16, writable: true, bit_write: mask}]",
            "devices[0].registers[0].bit_write: applies to a bit (bit: N) of a holding register",
        ),
        (
            "[{name: b, address: 00001, writable: true, bit_write: mask}]",
            "devices[0].registers[0].bit_write: applies to a bit (bit: N) of a holding register",
        ),
        (
            "[{name: b, address: 40001, bit: 3, bit_write: mask}]",
            "devices[0].registers[0].bit_write: applies to writable registers only",
        ),
    ],
)
def test_bit_write_problems(registers: str, problem: str) -> None:
    found = problems(_config("{name: c, host: h}", registers))
    assert any(p.startswith(problem) for p in found), found
