"""The codec: known byte patterns in every order, scaling, errors, and round-trip properties."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge.codec import (
    decode,
    encode,
    encode_bit,
    interpretations,
)
from modbus_mqtt_bridge.config.model import Register
from modbus_mqtt_bridge.config.types import TYPES, Table
from modbus_mqtt_bridge.errors import CodecError

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
INT_TYPES = [name for name, info in TYPES.items() if info.is_integer]
FEW = settings(max_examples=60, deadline=None)


def reg(type_name: str, **fields: Any) -> Register:
    fields.setdefault("table", Table.HOLDING)
    return Register(
        name="r",
        parameter="r",
        address=fields.pop("address", 0),
        register_address=40001,
        type=type_name,
        data_type=type_name,
        interval_s=1.0,
        **fields,
    )


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


# -- known patterns -----------------------------------------------------------------------

# (type, byte_order, word_order, registers, value): ABCD, CDAB, BADC, DCBA.
PATTERNS = [
    ("float32", "big", "big", [0x4364, 0x999A], 228.6),
    ("float32", "big", "little", [0x999A, 0x4364], 228.6),
    ("float32", "little", "big", [0x6443, 0x9A99], 228.6),
    ("float32", "little", "little", [0x9A99, 0x6443], 228.6),
    ("int32", "big", "big", [0xFFFF, 0xFFFE], -2),
    ("int32", "big", "little", [0xFFFE, 0xFFFF], -2),
    ("int32", "little", "big", [0xFFFF, 0xFEFF], -2),
    ("int32", "little", "little", [0xFEFF, 0xFFFF], -2),
    ("uint32", "big", "big", [0x0001, 0x0002], 65538),
    ("uint32", "big", "little", [0x0002, 0x0001], 65538),
    ("int64", "big", "big", [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    ("int64", "big", "little", [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    ("int64", "little", "big", [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
    ("int64", "little", "little", [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
    ("int64", "big", "big", [0xFFFF] * 4, -1),
    ("uint64", "big", "big", [0xFFFF] * 4, 2**64 - 1),
    ("uint64", "little", "little", [0xFFFF] * 4, 2**64 - 1),
    ("float64", "big", "big", [0x3FF8, 0, 0, 0], 1.5),
    ("float64", "little", "little", [0, 0, 0, 0xF83F], 1.5),
    ("float64", "big", "little", [0, 0, 0, 0x3FF8], 1.5),
    ("int16", "big", "big", [0xFFFE], -2),
    ("int16", "little", "big", [0xFEFF], -2),
    ("int16", "big", "little", [0xFFFE], -2),
    ("uint16", "big", "big", [0x1234], 0x1234),
    ("uint16", "little", "little", [0x1234], 0x3412),
]


@pytest.mark.parametrize(("type_name", "byte_order", "word_order", "words", "value"), PATTERNS)
def test_known_patterns_decode_and_encode(
    type_name: str, byte_order: str, word_order: str, words: list[int], value: float
) -> None:
    register = reg(type_name, byte_order=byte_order, word_order=word_order)
    decoded = decode(words, register)
    assert decoded == value
    assert type(decoded) is type(value)
    assert encode(value, register) == words


@pytest.mark.parametrize(
    ("words", "byte_order", "text"),
    [
        ([0x4142, 0x0000], "big", "AB"),
        ([0x4241, 0x0000], "little", "AB"),
        ([0x4142, 0x2020], "big", "AB"),
        ([0x4142, 0x4300], "big", "ABC"),
        ([0x0000, 0x0000], "big", ""),
        ([0xC3A9, 0x0000], "big", "é"),  # UTF-8
        ([0xE921, 0x0000], "big", "é!"),  # not UTF-8: read as Latin-1
    ],
)
def test_strings(words: list[int], byte_order: str, text: str) -> None:
    assert decode(words, reg("string", length=2, byte_order=byte_order)) == text


def test_string_encode_pads_with_nuls() -> None:
    assert encode("AB", reg("string", length=2)) == [0x4142, 0x0000]
    assert encode("ABC", reg("string", length=2, byte_order="little")) == [0x4241, 0x0043]


@pytest.mark.parametrize(
    ("word", "bit", "value"),
    [(0x8000, 15, True), (0x8000, 14, False), (0x0001, 0, True), (0xFFFE, 0, False)],
)
def test_bit_of_a_register(word: int, bit: int, value: bool) -> None:
    assert decode([word], reg("bool", bit=bit)) is value
    assert decode([word], reg("bool", bit=bit, byte_order="little")) is value


@pytest.mark.parametrize("table", [Table.COIL, Table.DISCRETE])
def test_coils_and_discrete_inputs(table: Table) -> None:
    register = reg("bool", table=table)
    assert decode([True], register) is True
    assert decode([0], register) is False
    assert encode(True, register) == [True]
    assert encode(False, register) == [False]


def test_whole_register_as_a_flag() -> None:
    assert decode([7], reg("bool")) is True
    assert decode([0], reg("bool")) is False
    assert encode(True, reg("bool")) == [1]


# -- scale and offset ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "words", "scale", "offset", "value"),
    [
        ("int16", [229], 0.1, 0.0, 22.9),  # not 22.900000000000002
        ("int16", [0xFFFF], 0.1, 0.0, -0.1),
        ("int16", [0xFFFF], 1.0, 0.0, -1),  # stays an int
        ("uint16", [100], 10.0, -40.0, 960),  # whole scale and offset: still an int
        ("uint16", [3], 0.5, 0.25, 1.75),
        ("uint16", [65535], 0.001, 0.0, 65.535),
        ("uint16", [1], 1e-05, 0.0, 1e-05),
        ("int32", [0, 12345], 0.01, -100.0, 23.45),
        ("float32", [0x4364, 0x999A], 0.1, 0.0, 22.86),
        ("float32", [0x4364, 0x999A], 1.0, 0.1, 228.7),
    ],
)
def test_scale_and_offset(
    type_name: str, words: list[int], scale: float, offset: float, value: float
) -> None:
    register = reg(type_name, scale=scale, offset=offset)
    decoded = decode(words, register)
    assert decoded == value
    assert type(decoded) is type(value)
    assert encode(value, register) == words


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "words", "message"),
    [
        ("float32", [0x7FC0, 0x0000], "value is NaN"),
        ("float32", [0x7F80, 0x0000], "inf"),
        ("float32", [0xFF80, 0x0000], "inf"),
        ("float64", [0x7FF8, 0, 0, 0], "value is NaN"),
        ("float32", [0x4364], "expected 2 register"),
        ("int16", [1, 2], "expected 1 register"),
        ("int32", [], "expected 2 register"),
        ("uint16", [65536], "not a 16-bit value"),
        ("int32", [0, -1], "register 1 is -1"),
        ("int16", [1.5], "not a 16-bit value"),
        ("string", [0x4142], "expected 2 register"),
        ("string", [0x4142, 70000], "not a 16-bit value"),
        ("flot", [0], "no codec for type 'flot'"),
    ],
)
def test_decode_errors(type_name: str, words: list[Any], message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(words, reg(type_name, length=2))


def test_nan_is_a_read_error_by_name() -> None:
    with pytest.raises(CodecError, match=r"^value is NaN$"):
        decode([0x7FC0, 0x0000], reg("float32"))


def test_scaling_into_infinity_is_an_error() -> None:
    with pytest.raises(CodecError, match="inf"):
        decode([0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF], reg("float64", scale=10.0))


@pytest.mark.parametrize(
    ("register", "words"),
    [
        (reg("bool", table=Table.COIL), [2]),
        (reg("bool", table=Table.COIL), [True, False]),
        (reg("bool", table=Table.COIL), [1.0]),
        (reg("bool", bit=16), [1]),
        (reg("bool", bit=-1), [1]),
        (reg("bool", bit=0), [0x10000]),
    ],
)
def test_bit_errors(register: Register, words: list[Any]) -> None:
    with pytest.raises(CodecError):
        decode(words, register)


@pytest.mark.parametrize(
    ("value", "register", "message"),
    [
        (
            4000,
            reg("int16", scale=0.1),
            r"int16 with scale 0\.1 and offset 0\.0: -3276\.8\.\.3276\.7",
        ),
        (-1, reg("uint16"), r"out of range for uint16: 0\.\.65535"),
        (2**64, reg("uint64"), r"0\.\.18446744073709551615"),
        (1e39, reg("float32"), "out of range for float32"),
        (1e300, reg("float64", scale=1e-300), "does not fit float64"),
        (True, reg("int16"), "expected a number"),
        ("12", reg("int16"), "expected a number"),
        (math.nan, reg("float32"), "not a finite number"),
        (math.inf, reg("int32"), "not a finite number"),
        (1, reg("int16", scale=0.0, offset=1.0), "cannot invert scale"),
        ("ABCDE", reg("string", length=2), "5 bytes does not fit 2 registers"),
        (12, reg("string", length=2), "expected a string"),
        (2, reg("bool", table=Table.COIL), "expected true or false"),
        ("on", reg("bool", table=Table.COIL), "expected true or false"),
        (True, reg("bool", bit=3), "use encode_bit"),
    ],
)
def test_encode_errors(value: Any, register: Register, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(value, register)


def test_encode_rounds_to_the_nearest_step_and_keeps_big_ints_exact() -> None:
    assert encode(22.94, reg("int16", scale=0.1)) == [229]
    assert encode(2.5, reg("int16")) == [2]  # half to even
    assert decode(encode(2**63 - 1, reg("int64")), reg("int64")) == 2**63 - 1
    assert encode(-3276.8, reg("int16", scale=0.1)) == [0x8000]


def test_encode_bit() -> None:
    assert encode_bit(True, 0x0000, 15) == 0x8000
    assert encode_bit(False, 0xFFFF, 0) == 0xFFFE
    assert encode_bit(True, 0x0001, 0) == 0x0001
    with pytest.raises(CodecError):
        encode_bit(True, 0x10000, 0)
    with pytest.raises(CodecError):
        encode_bit(True, 0, 16)


# -- block slicing and interpretations ----------------------------------------------------


def test_interpretations_of_two_registers() -> None:
    found = interpretations([0x4364, 0x999A])
    assert ("float32", "big", "big", 228.6) in found
    assert ("int16", "big", "big", 0x4364) in found
    assert ("uint32", "big", "little", 0x999A4364) in found
    assert not any(t in ("int64", "float64") for t, *_ in found)
    assert len({(t, b, w) for t, b, w, _ in found}) == len(found)


def test_interpretations_skip_nan_and_offer_strings() -> None:
    found = interpretations([0x7FC0, 0x0000])
    assert not any(t == "float32" and (b, w) == ("big", "big") for t, b, w, _ in found)
    assert ("string", "big", "big", "AB") in interpretations([0x4142, 0x0000])
    assert ("float64", "big", "big", 1.5) in interpretations([0x3FF8, 0, 0, 0])
    assert [t for t, *_ in interpretations([1])] == ["int16", "int16", "uint16", "uint16"]
    assert interpretations([]) == []


# -- properties ---------------------------------------------------------------------------


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@pytest.mark.parametrize("type_name", INT_TYPES)
@FEW
@given(data=st.data())
def test_integers_round_trip(type_name: str, byte_order: str, word_order: str, data: Any) -> None:
    info = TYPES[type_name]
    assert info.min_value is not None
    assert info.max_value is not None
    value = data.draw(st.integers(int(info.min_value), int(info.max_value)))
    register = reg(type_name, byte_order=byte_order, word_order=word_order)
    assert decode(encode(value, register), register) == value


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@FEW
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(byte_order: str, word_order: str, value: float) -> None:
    r32 = reg("float32", byte_order=byte_order, word_order=word_order)
    r64 = reg("float64", byte_order=byte_order, word_order=word_order)
    if abs(value) <= 3.4028234663852886e38:
        decoded = decode(encode(value, r32), r32)
        assert isinstance(decoded, float)
        assert f32(decoded) == f32(value)
    assert decode(encode(value, r64), r64) == value


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@FEW
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_float32_registers_survive_decode_then_encode(
    byte_order: str, word_order: str, words: list[int]
) -> None:
    register = reg("float32", byte_order=byte_order, word_order=word_order)
    try:
        value = decode(words, register)
    except CodecError:
        return  # NaN or infinity
    assert encode(value, register) == words


@pytest.mark.parametrize(
    ("type_name", "scale", "offset"), [("int16", 0.1, 0.0), ("uint32", 0.01, -40.5)]
)
@FEW
@given(data=st.data())
def test_scaled_registers_survive_decode_then_encode(
    type_name: str, scale: float, offset: float, data: Any
) -> None:
    register = reg(type_name, scale=scale, offset=offset)
    words = data.draw(
        st.lists(st.integers(0, 0xFFFF), min_size=register.count, max_size=register.count)
    )
    assert encode(decode(words, register), register) == words


@pytest.mark.parametrize("byte_order", ["big", "little"])
@FEW
@given(text=st.text(max_size=8).map(lambda s: s.rstrip(" \x00")))
def test_strings_round_trip(byte_order: str, text: str) -> None:
    register = reg("string", length=8, byte_order=byte_order)
    if len(text.encode()) > 16:
        with pytest.raises(CodecError):
            encode(text, register)
    else:
        assert decode(encode(text, register), register) == text


@FEW
@given(value=st.booleans(), word=st.integers(0, 0xFFFF), bit=st.integers(0, 15))
def test_bits_round_trip(value: bool, word: int, bit: int) -> None:
    written = encode_bit(value, word, bit)
    assert decode([written], reg("bool", bit=bit)) is value
    assert written & ~(1 << bit) == word & ~(1 << bit)  # the other bits are untouched
    coil = reg("bool", table=Table.COIL)
    assert decode(encode(value, coil), coil) is value


ANY_WORD = st.one_of(
    st.integers(-(2**70), 2**70), st.integers(0, 0xFFFF), st.booleans(), st.floats(), st.text()
)
ANY_REGISTER = st.builds(
    reg,
    st.sampled_from([*TYPES, "flot"]),
    table=st.sampled_from(list(Table)),
    byte_order=st.sampled_from(["big", "little"]),
    word_order=st.sampled_from(["big", "little"]),
    bit=st.one_of(st.none(), st.integers(-2, 17)),
    length=st.one_of(st.none(), st.integers(1, 4)),
    scale=st.one_of(st.just(1.0), st.floats()),
    offset=st.one_of(st.just(0.0), st.floats()),
)


@settings(max_examples=400, deadline=None)
@given(register=ANY_REGISTER, words=st.lists(ANY_WORD, max_size=5))
def test_decode_is_total(register: Register, words: list[Any]) -> None:
    try:
        value = decode(words, register)
    except CodecError:
        return
    assert isinstance(value, int | float | str)
    if isinstance(value, float):
        assert math.isfinite(value)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.integers(0, 0xFFFF), max_size=5))
def test_interpretations_are_total(words: list[int]) -> None:
    for _type, _byte_order, _word_order, value in interpretations(words):
        assert not isinstance(value, float) or math.isfinite(value)
