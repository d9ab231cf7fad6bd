"""Command payloads -> Command: every accepted shape, every refusal with its precise message."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbus_mqtt_bridge.writes.parse import Command, CommandError, parse, parse_named

LIMIT = 4096


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"21.5", 21.5),
        (b" 21.5\n", 21.5),
        (b"-3", -3),
        (b"+7", 7),
        (b"1e3", 1000.0),
        (b".5", 0.5),
        (b"1", 1),
        (b"0", 0),
        (b"true", True),
        (b"false", False),
        (b"TRUE", True),
        (b"ON", True),
        (b"OFF", False),
        (b"on", True),
        (b'"hello"', "hello"),
        (b"hello world", "hello world"),
        ("grüße".encode(), "grüße"),
        (b'{"value": 21.5}', 21.5),
        (b'{"value": "ON"}', "ON"),
        (b'{"value": true, "id": "c-1"}', True),
    ],
)
def test_register_payloads(payload: bytes, value: object) -> None:
    command = parse(payload, "sp", LIMIT)
    assert command.values == (("sp", value),)
    assert type(command.values[0][1]) is type(value)


@pytest.mark.parametrize("payload", [b"NaN", b"nan", b"inf", b"-Infinity", b'{"value": NaN}'])
def test_non_finite_values_parse_so_check_can_name_them(payload: bytes) -> None:
    ((_, value),) = parse(payload, "sp", LIMIT).values
    assert isinstance(value, float) and not math.isfinite(value)


def test_id_and_ts() -> None:
    command = parse(b'{"value": 1, "id": "c-17", "ts": "2025-07-08T16:00:00Z"}', "sp", LIMIT)
    assert command == Command((("sp", 1),), "c-17", 1751990400.0)
    assert parse(b'{"value": 1, "id": 17, "ts": 1751990400}', "sp", LIMIT).id == 17
    assert parse(b'{"value": 1, "ts": 1751990400000}', "sp", LIMIT).ts == 1751990400.0
    assert parse(b'{"value": 1, "ts": "2025-07-08T18:00:00+02:00"}', "sp", LIMIT).ts == 1751990400.0


def test_device_payload() -> None:
    command = parse(b'{"setpoint": 21.5, "pump_on": true, "id": "d-1"}', None, LIMIT)
    assert command.values == (("setpoint", 21.5), ("pump_on", True))
    assert command.id == "d-1"


@pytest.mark.parametrize(
    ("payload", "register", "error"),
    [
        (b"", "sp", "empty payload"),
        (b"   ", "sp", "empty payload"),
        (b"\xff\xfe", "sp", "not valid UTF-8"),
        (b"x" * (LIMIT + 1), "sp", f"payload of {LIMIT + 1} bytes is over the limit of {LIMIT}"),
        (b'{"value": 21.5', "sp", "invalid JSON"),
        (b"[1, 2]", "sp", "expected a value or a JSON object"),
        (b'{"valeu": 1}', "sp", "unknown field 'valeu'"),
        (b'{"id": "x"}', "sp", 'missing "value"'),
        (b'{"value": null}', "sp", "got null"),
        (b'{"value": [1]}', "sp", "got a list"),
        (b'{"value": {"a": 1}}', "sp", "got an object"),
        (b'{"value": 1, "value": 2}', "sp", "key 'value' appears twice"),
        (b'{"value": 1, "id": true}', "sp", "id must be a string or an integer"),
        (b'{"value": 1, "id": 1.5}', "sp", "id must be a string or an integer"),
        (b'{"value": 1, "ts": "yesterday"}', "sp", "not an ISO 8601 time"),
        (b'{"value": 1, "ts": "2025-07-08T16:00:00"}', "sp", "has no time zone"),
        (b'{"value": 1, "ts": -5}', "sp", "is not a time"),
        (b'{"value": 1, "ts": true}', "sp", "ts must be"),
        (b'"unterminated', "sp", "invalid JSON"),
        (b"21.5", None, "a device command needs a JSON object"),
        (b"[1]", None, "a device command needs a JSON object"),
        (b'{"id": "x"}', None, "no register to write"),
        (b'{"a": 1, "a": 2}', None, "key 'a' appears twice"),
        (b'{"a": null}', None, "a: expected a number"),
    ],
)
def test_refusals(payload: bytes, register: str | None, error: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(payload, register, LIMIT)
    assert error in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"9" * 5000, "too many digits"),
        (b'{"value": ' + b"9" * 5000 + b"}", "too many digits"),
        (b"[" * 50_000, "invalid JSON"),
    ],
)
def test_pathological_payloads_under_a_generous_limit(payload: bytes, error: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(payload, "sp", 1_000_000)
    assert error in str(caught.value)


def test_a_megabyte_is_refused_before_decoding() -> None:
    with pytest.raises(CommandError, match="over the limit"):
        parse(b"{" + b" " * 1_048_576 + b"}", "sp", LIMIT)


@given(st.binary(max_size=300), st.sampled_from(["sp", None]))
def test_arbitrary_bytes_give_a_command_or_a_command_error(
    payload: bytes, register: str | None
) -> None:
    try:
        command = parse(payload, register, 200)
    except CommandError:
        return
    assert command.values
    assert len(payload) <= 200


@pytest.mark.parametrize(
    ("payload", "register", "command_id"),
    [
        (b'{"id": "c-13"}', "sp", "c-13"),
        (b'{"id": 13, "value": null}', "sp", 13),
        (b'{"id": "c-14", "valeu": 1}', "sp", "c-14"),
        (b'{"id": "c-15", "value": 1, "ts": "yesterday"}', "sp", "c-15"),
        (b'{"id": "d-1"}', None, "d-1"),
        (b'{"id": "d-2", "sp": [1]}', None, "d-2"),
        (b'{"id": true, "value": 1}', "sp", None),  # no readable id
        (b'{"id": "c-16", "value": 1', "sp", None),  # not JSON: nothing can be read
        (b'[{"id": "c-17"}]', "sp", None),
    ],
)
def test_a_refusal_carries_the_id_it_could_read(
    payload: bytes, register: str | None, command_id: object
) -> None:
    with pytest.raises(CommandError) as caught:
        parse(payload, register, LIMIT)
    assert caught.value.command_id == command_id


# -- the HTTP write body: {"register": R, "value": V, "id": ...} -------------------------


def test_a_named_body_gives_its_register_and_command() -> None:
    register, command = parse_named(b'{"register": "sp", "value": 21.5, "id": "w1"}', 4096)
    assert register == "sp" and command == Command((("sp", 21.5),), "w1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"register": "a", "register": "b", "value": 1, "id": "c-9"}', "register"),
        (b'{"value": 1, "id": "c-9"}', 'needs "register"'),
        (b'{"register": 7, "value": 1, "id": "c-9"}', 'needs "register"'),
        (b'{"register": "a", "id": "c-9"}', 'missing "value"'),
        (b'{"register": "a", "value": 1, "colour": 2, "id": "c-9"}', "unknown field"),
        (b'{"register": "a", "id": "c-9", "value": ' + b"[" * 8000 + b"]" * 8000 + b"}", "nested"),
    ],
)
def test_a_bad_named_body_is_refused_with_its_id(body: bytes, message: str) -> None:
    with pytest.raises(CommandError, match=message) as refused:
        parse_named(body, 100_000)
    # the id is echoed when the JSON could be read (not with a repeated key or absurd nesting)
    unreadable = b'"register": "b"' in body or b"[[[" in body
    assert refused.value.command_id == (None if unreadable else "c-9")


@pytest.mark.parametrize("body", [b"[1, 2]", b"12", b'"text"'])
def test_a_named_body_must_be_an_object(body: bytes) -> None:
    with pytest.raises(CommandError, match="JSON object"):
        parse_named(body, 4096)
