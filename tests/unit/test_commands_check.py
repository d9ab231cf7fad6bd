"""check: every rule before the bus (exists, writable, type, grid, min/max, age), as tables.

The property tests feed arbitrary bytes through parse and check: nothing but CommandError
ever escapes, and nothing is approved unless the payload really said that value.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbus_mqtt_bridge.config.model import CommandsConfig, Config, Connection, Device, Register
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.writes.check import Envelope, check, screen, too_late
from modbus_mqtt_bridge.writes.parse import (
    Command,
    CommandError,
    CommandExpired,
    CommandIgnored,
    parse,
)

NOW = 1_751_990_400.0  # 2025-07-08T16:00:00Z


def _reg(name: str, table: Table, address: int, type_: str, **kw: object) -> Register:
    return Register(
        name=name,
        parameter=name,
        table=table,
        address=address,
        register_address=address,
        type=type_,
        data_type=type_,
        interval_s=1.0,
        **kw,  # type: ignore[arg-type]
    )


H = Table.HOLDING
REGISTERS = (
    _reg("setpoint", H, 0, "float32", writable=True, min=5.0, max=30.0),
    _reg("scaled", H, 2, "int16", writable=True, scale=0.1, offset=-40.0, min=-40.0, max=100.0),
    _reg("counter", H, 3, "uint16", writable=True),
    _reg("pump", Table.COIL, 0, "bool", writable=True),
    _reg("flag", H, 4, "bool", writable=True, bit=3),
    _reg("label", H, 10, "string", writable=True, length=2),
    _reg("big", H, 30, "int32", writable=True, word_order="little"),
    _reg("voltage", Table.INPUT, 0, "float32"),
    _reg("locked", H, 20, "uint16"),
)
DEVICE = Device("meter1", 1, "lan", 1, REGISTERS)
CONFIG = Config(
    "plant1",
    (Connection("lan", host="127.0.0.1", port=502),),
    (DEVICE,),
    commands=CommandsConfig(max_age_s=30.0, max_payload_bytes=4096),
)
FRESH = Envelope(NOW)


def _approve(payload: bytes, register: str | None = None, envelope: Envelope = FRESH):
    command = parse(payload, register, CONFIG.commands.max_payload_bytes)
    return check(CONFIG, "meter1", command, envelope)


@pytest.mark.parametrize(
    ("register", "payload", "value", "words"),
    [
        ("setpoint", b"21.5", 21.5, (0x41AC, 0x0000)),
        ("setpoint", b"5", 5, (0x40A0, 0)),
        ("setpoint", b'{"value": 30}', 30, (0x41F0, 0)),
        ("scaled", b"21.5", 21.5, (615,)),  # (21.5 + 40) / 0.1
        ("scaled", b"-40", -40, (0,)),
        ("counter", b"65535", 65535, (0xFFFF,)),
        ("counter", b"7.0", 7.0, (7,)),
        ("pump", b"ON", True, (True,)),
        ("pump", b"off", False, (False,)),
        ("pump", b"1", True, (True,)),
        ("pump", b"0", False, (False,)),
        ("pump", b'{"value": "on"}', True, (True,)),
        ("flag", b"true", True, ()),  # read-modify-write: words come from the device
        ("label", b"AB", "AB", (0x4142, 0x0000)),
        ("label", b'"ABCD"', "ABCD", (0x4142, 0x4344)),
        ("big", b"-2", -2, (0xFFFE, 0xFFFF)),  # low word first
        ("big", b"65536", 65536, (0x0000, 0x0001)),
    ],
)
def test_approved(register: str, payload: bytes, value: object, words: tuple[int, ...]) -> None:
    approved = _approve(payload, register)
    (write,) = approved.writes
    assert write.register.name == register
    assert write.value == value
    assert type(write.value) is type(value)
    assert write.words == words
    assert approved.deadline == NOW + 30.0


@pytest.mark.parametrize(
    ("register", "payload", "error"),
    [
        ("nosuch", b"1", "unknown register 'nosuch' on device 'meter1'"),
        ("voltage", b"1", "register 'voltage' is not writable"),
        ("locked", b"1", "register 'locked' is not writable"),
        ("setpoint", b"NaN", "nan is not a finite number"),
        ("setpoint", b"inf", "inf is not a finite number"),
        ("setpoint", b"1e999", "inf is not a finite number"),
        ("setpoint", b"4.9", "4.9 is below min 5"),
        ("setpoint", b"30.5", "30.5 is above max 30"),
        ("setpoint", b"ON", "expected a number for float32, got True"),
        ("setpoint", b"abc", "expected a number for float32, got 'abc'"),
        ("setpoint", b'{"value": "21.5"}', "got '21.5'"),
        ("scaled", b"21.55", "21.55 is not a multiple of 0.1 plus -40"),
        ("scaled", b"100.1", "above max 100"),
        ("counter", b"65536", "out of range for uint16"),
        ("counter", b"-1", "out of range for uint16"),
        ("counter", b"1.5", "1.5 is not a multiple of 1"),
        ("counter", b"1" + b"0" * 400, "a number of 401 digits is out of range"),
        ("setpoint", b"-" + b"9" * 41, "a number of 41 digits is out of range"),
        ("scaled", b"1.8e307", "1.8e+307 is out of range for int16"),
        ("pump", b"2", "expected true/false, ON/OFF or 1/0, got 2"),
        ("pump", b"0.5", "got 0.5"),
        ("pump", b"maybe", "got 'maybe'"),
        ("label", b"ABCDE", "does not fit 2 registers"),
        ("label", b"12", "expected a string, got 12"),
    ],
)
def test_refused(register: str, payload: bytes, error: str) -> None:
    with pytest.raises(CommandError) as caught:
        _approve(payload, register)
    assert error in str(caught.value)
    assert type(caught.value) is CommandError


def test_unknown_device() -> None:
    with pytest.raises(CommandError, match="unknown device 'meter9'"):
        check(CONFIG, "meter9", Command((("setpoint", 1),)), FRESH)


def test_device_command_is_checked_whole() -> None:
    approved = _approve(b'{"setpoint": 21.5, "pump": true, "id": "d-1"}')
    assert [w.register.name for w in approved.writes] == ["setpoint", "pump"]
    with pytest.raises(CommandError, match="'voltage' is not writable"):
        _approve(b'{"setpoint": 21.5, "voltage": 1}')


def test_retained_commands_are_ignored() -> None:
    screen(FRESH)
    with pytest.raises(CommandIgnored, match="retained"):
        screen(Envelope(NOW, retained=True))


@pytest.mark.parametrize(
    ("payload", "envelope", "deadline"),
    [
        (b"21.5", FRESH, NOW + 30),
        (b"21.5", Envelope(NOW, expiry_s=5), NOW + 5),
        (b"21.5", Envelope(NOW, expiry_s=300), NOW + 30),
        (b'{"value": 21.5, "ts": 1751990390}', FRESH, NOW + 20),
        (b'{"value": 21.5, "ts": 1751990390}', Envelope(NOW, expiry_s=3), NOW + 3),
        (b'{"value": 21.5, "ts": "2025-07-08T16:00:10Z"}', FRESH, NOW + 30),
    ],
)
def test_deadline(payload: bytes, envelope: Envelope, deadline: float) -> None:
    assert _approve(payload, "setpoint", envelope).deadline == deadline


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"value": 21.5, "ts": 1751990369}', "command is 31.0s old (ts)"),
        (b'{"value": 21.5, "ts": "2025-07-08T15:00:00Z"}', "3600.0s old"),
        (b'{"value": 21.5, "ts": "2025-07-08T16:01:00Z"}', "60.0s in the future"),
    ],
)
def test_expired(payload: bytes, error: str) -> None:
    with pytest.raises(CommandExpired) as caught:
        _approve(payload, "setpoint")
    assert error in str(caught.value)
    assert caught.value.outcome == "expired"


def test_too_late() -> None:
    assert str(too_late(NOW, NOW + 2.5)) == (
        "command expired before it could be written (2.5s after its deadline)"
    )
    assert str(too_late(NOW, NOW)) == "command expired before it could be written"


# -- properties -----------------------------------------------------------------------

_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FLAGS = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}

payloads = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(str.encode),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
    st.integers(-(2**40), 2**40).map(lambda i: str(i).encode()),
    st.sampled_from([b"ON", b"OFF", b"true", b"false", b"1", b"0", b"null", b"{}", b"[]"]),
    st.builds(
        lambda v, i: json.dumps({"value": v, "id": i}).encode(),
        st.one_of(st.floats(), st.integers(), st.booleans(), st.text(max_size=5), st.none()),
        st.one_of(st.text(max_size=5), st.integers(), st.none()),
    ),
)


def _said(payload: bytes) -> object:
    """What the payload says, by an independent reading (None: it says nothing usable)."""
    text = payload.decode("utf-8").strip()
    if text.startswith("{"):
        return json.loads(text)["value"]
    if text.lower() in ("true", "on"):
        return True
    if text.lower() in ("false", "off"):
        return False
    if _FLOAT.fullmatch(text):
        return float(text)
    return json.loads(text) if text.startswith('"') else text


def _float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


@given(payloads)
def test_arbitrary_payloads_never_approve_what_was_not_said(payload: bytes) -> None:
    for name in ("setpoint", "scaled", "counter", "pump", "flag", "label", "voltage", "nosuch"):
        try:
            approved = _approve(payload, name)
        except CommandError:
            continue
        (write,) = approved.writes
        said = _said(payload)
        register = write.register
        assert register.writable
        if name in ("pump", "flag"):
            if isinstance(said, str):
                said = _FLAGS[said.strip().lower()]
            assert said == write.value and (isinstance(said, bool) or said in (0, 1))
            assert isinstance(write.value, bool)
        elif name == "label":
            assert write.value == said and isinstance(said, str)
        else:
            assert isinstance(write.value, int | float) and not isinstance(write.value, bool)
            assert not isinstance(said, bool)
            assert isinstance(said, int | float) and math.isfinite(said) and said == write.value
            assert register.min is None or write.value >= register.min
            assert register.max is None or write.value <= register.max
        if name == "setpoint":
            assert struct.unpack(">f", struct.pack(">2H", *write.words))[0] == _float32(
                float(write.value)
            )


@given(st.binary(max_size=200), st.sampled_from(["setpoint", "pump", None]))
def test_arbitrary_bytes_raise_nothing_but_command_error(
    payload: bytes, register: str | None
) -> None:
    with contextlib.suppress(CommandError):
        _approve(payload, register)
