"""Decoding a whole response at once (codec.BlockCodec) gives exactly what decoding each value
alone gives: the same values, the same types, the same per-value errors, in every type and
byte/word order, with holes between values."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modbus_mqtt_bridge import decimals
from modbus_mqtt_bridge.codec import block_codec, decode, decode_block
from modbus_mqtt_bridge.config.load import load_config_text
from modbus_mqtt_bridge.config.model import Register
from modbus_mqtt_bridge.config.types import TYPES, Table
from modbus_mqtt_bridge.errors import CodecError
from modbus_mqtt_bridge.plan import build_plan

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
NUMERIC = [name for name, info in TYPES.items() if info.struct_code]
SCALES = [(1.0, 0.0), (0.1, 0.0), (2.0, -5.0), (0.01, 0.5), (1e308, 1e308)]
# Words that make NaN and infinities likely for float types, plus anything else.
WORD = st.one_of(
    st.sampled_from([0, 0x7FC0, 0x7F80, 0xFF80, 0xFFFF, 0x8000]), st.integers(0, 0xFFFF)
)


def reg(type_name: str, orders: tuple[str, str], scale: tuple[float, float]) -> Register:
    return Register(
        name="r",
        parameter="r",
        table=Table.HOLDING,
        address=0,
        register_address=40001,
        type=type_name,
        data_type=type_name,
        interval_s=1.0,
        byte_order=orders[0],  # type: ignore[arg-type]
        word_order=orders[1],  # type: ignore[arg-type]
        scale=scale[0],
        offset=scale[1],
    )


def one_by_one(values: list[tuple[Register, int]], block: list[int]) -> list[Any]:
    out: list[Any] = []
    for register, offset in values:
        try:
            out.append(decode(block[offset : offset + register.count], register))
        except CodecError as exc:
            out.append(("error", str(exc)))
    return out


def shown(results: list[Any]) -> list[Any]:
    """Comparable form: errors by message, values with their type (1 and 1.0 differ)."""
    return [
        ("error", str(r))
        if isinstance(r, CodecError)
        else r
        if isinstance(r, tuple)
        else (type(r), r)
        for r in results
    ]


@settings(max_examples=300, deadline=None)
@given(
    orders=st.sampled_from(ORDERS),
    layout=st.lists(
        st.tuples(st.sampled_from(NUMERIC), st.integers(0, 3), st.sampled_from(SCALES)),
        min_size=1,
        max_size=8,
    ),
    tail=st.integers(0, 3),
    data=st.data(),
)
def test_a_whole_block_decodes_as_its_values_do_one_by_one(
    orders: tuple[str, str],
    layout: list[tuple[str, int, tuple[float, float]]],
    tail: int,
    data: Any,
) -> None:
    values: list[tuple[Register, int]] = []
    position = 0
    for type_name, hole, scale in layout:
        register = reg(type_name, orders, scale)
        values.append((register, position + hole))
        position += hole + register.count
    count = position + tail
    block = data.draw(st.lists(WORD, min_size=count, max_size=count))
    codec = block_codec(values, count)
    assert codec is not None
    decoded = decode_block(codec, block)
    assert decoded is not None
    results: list[Any] = list(decoded[0])
    for index, error in decoded[1]:
        results[index] = error
    assert shown(results) == shown(one_by_one(values, block))


def test_a_block_of_the_wrong_length_or_with_bad_words_is_left_to_value_by_value() -> None:
    values = [
        (reg("uint16", ("big", "big"), (1.0, 0.0)), 0),
        (reg("float32", ("big", "big"), (1.0, 0.0)), 1),
    ]
    codec = block_codec(values, 3)
    assert codec is not None
    assert decode_block(codec, [1, 2]) is None
    assert decode_block(codec, [1, 2, 3, 4]) is None
    assert decode_block(codec, [1, 0x10000, 3]) is None


@pytest.mark.parametrize(
    ("second", "offset"),
    [
        (reg("uint16", ("little", "big"), (1.0, 0.0)), 1),  # mixed orders
        (reg("uint16", ("big", "big"), (1.0, 0.0)), 0),  # overlap
        (Register("s", "s", Table.HOLDING, 1, 40002, "string", "string", 1.0, length=2), 1),
        (Register("b", "b", Table.HOLDING, 1, 40002, "bool", "bool", 1.0, bit=3), 1),
    ],
)
def test_values_one_struct_cannot_carry_get_no_block_codec(second: Register, offset: int) -> None:
    first = reg("uint16", ("big", "big"), (1.0, 0.0))
    assert block_codec([(first, 0), (second, offset)], 4) is None


def test_the_plan_compiles_one_block_codec_per_numeric_read() -> None:
    config = load_config_text(
        """
site: s
connections: [{name: lan, host: h}]
devices:
  - name: d
    registers:
      - {name: a, address: 40001, type: float32}
      - {name: b, address: 40004, type: int16, scale: 0.1}
      - {name: c, address: 40010, type: uint32}
      - {name: k, address: 00001}
""",
        {},
    )
    holding, coils = sorted(
        build_plan(config).requests, key=lambda r: r.function_code, reverse=True
    )
    assert holding.block is not None and coils.block is None
    block = [0x4364, 0x999A, 0, 0xFFF6, 0, 0, 0, 0, 0, 1, 2]
    assert decode_block(holding.block, block) == ([228.6, -1.0, 65538], [])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=70))
def test_float32s_made_shortest_together_are_each_as_made_shortest_alone(bits: list[int]) -> None:
    """A precision at a time over a whole block, from 7 down to 6 and up to 9: the same
    shortest decimal `shortest_float32` finds value by value (NaN and infinities refused)."""
    raws = list(struct.unpack(f">{len(bits)}f", struct.pack(f">{len(bits)}I", *bits)))
    values: list[Any] = list(raws)
    errors = dict(decimals.shorten_float32s(values, range(len(values))))
    for i, raw in enumerate(raws):
        if math.isfinite(raw):
            assert i not in errors
            assert repr(values[i]) == repr(decimals.shortest_float32(raw))
        else:
            assert str(errors[i]) == ("value is NaN" if math.isnan(raw) else f"value is {raw}")


@pytest.mark.parametrize(
    "text", ["228.6", "0.1", "3.4028235e+38", "1e-45", "123456.7", "9999999.0", "16777217.0"]
)
def test_float32s_at_the_edges_of_each_precision(text: str) -> None:
    (raw,) = struct.unpack(">f", struct.pack(">f", float(text)))
    values: list[Any] = [raw]
    assert decimals.shorten_float32s(values, [0]) == []
    assert repr(values[0]) == repr(decimals.shortest_float32(raw))
