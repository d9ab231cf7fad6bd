"""Registers <-> values: decode raw Modbus words into engineering values and encode them back.

Pure and total: every failure is a `CodecError` with a precise message, nothing is mutated,
nothing here does I/O.

Byte and word order, for a 32-bit value whose big-endian bytes are A B C D:

    byte_order  word_order  registers      common name
    big         big         [AB, CD]       ABCD
    big         little      [CD, AB]       CDAB
    little      big         [BA, DC]       BADC
    little      little      [DC, BA]       DCBA

Packing the registers with one struct and unpacking the value with another covers all four:
the registers are packed little-endian exactly when the two orders differ, and the value is
unpacked little-endian exactly when the word order is little (see `_layout`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

from .config.model import Register
from .config.types import TYPES, Table, TypeInfo
from .decimals import not_finite, shorten_float32s, shortest_float32
from .errors import CodecError

Value = int | float | bool | str
Order = Literal["big", "little"]

_ORDERS: tuple[tuple[Order, Order], ...] = (
    ("big", "big"),
    ("big", "little"),
    ("little", "big"),
    ("little", "little"),
)
# Interpretations offered by the `read` commissioning command, in display order.
_NUMERIC_TYPES = ("int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64")
# Module constants: `x is _COIL` is several times cheaper than `Table.is_bits` on the hot path.
_COIL = Table.COIL
_DISCRETE = Table.DISCRETE


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one numeric type in one byte/word order maps to and from registers."""

    info: TypeInfo
    words: struct.Struct  # registers in wire order <-> bytes
    value: struct.Struct  # bytes <-> the number

    @property
    def count(self) -> int:
        return self.info.registers


def _build_layout(type_name: str, byte_order: str, word_order: str) -> _Layout:
    info = TYPES[type_name]
    words_endian = ">" if byte_order == word_order else "<"
    value_endian = ">" if word_order == "big" else "<"
    return _Layout(
        info,
        struct.Struct(f"{words_endian}{info.registers}H"),
        struct.Struct(value_endian + info.struct_code),
    )


# Every numeric type in every order, built once: decode looks its layout up in one dict probe.
_LAYOUTS: dict[tuple[str, str, str], _Layout] = {
    (name, byte_order, word_order): _build_layout(name, byte_order, word_order)
    for name, info in TYPES.items()
    if info.struct_code
    for byte_order, word_order in _ORDERS
}


def _layout(type_name: str, byte_order: str, word_order: str) -> _Layout:
    layout = _LAYOUTS.get((type_name, byte_order, word_order))
    if layout is None:
        raise _no_layout(type_name, byte_order, word_order)
    return layout


def _no_layout(type_name: str, byte_order: str, word_order: str) -> CodecError:
    return CodecError(
        f"no codec for type {type_name!r} in byte/word order {byte_order}/{word_order}"
    )


@dataclass(frozen=True, slots=True)
class _Scaling:
    """What a (scale, offset) pair allows: exact integer maths, or rounding to `decimals`."""

    int_scale: int | None  # both set only when scale and offset are whole numbers
    int_offset: int | None
    decimals: int | None  # decimals an integer raw value can produce; None: unbounded


@lru_cache(maxsize=1024)
def _scaling(scale: float, offset: float) -> _Scaling:
    whole = _is_whole(scale) and _is_whole(offset)
    decimals = None
    if math.isfinite(scale) and math.isfinite(offset):
        decimals = max(_decimals(scale), _decimals(offset))
    return _Scaling(int(scale) if whole else None, int(offset) if whole else None, decimals)


def _is_whole(number: float) -> bool:
    return math.isfinite(number) and float(number).is_integer()


def _decimals(number: float) -> int:
    """Decimal places in the shortest repr of `number`: 0.1 -> 1, 0.25 -> 2, 1e-05 -> 5."""
    mantissa, _, exponent = repr(float(number)).partition("e")
    fraction = mantissa.partition(".")[2].rstrip("0")
    return max(0, len(fraction) - int(exponent or 0))


# -- decode -------------------------------------------------------------------------------


def decode(words: Sequence[int] | Sequence[bool], register: Register) -> Value:
    """The value of `register` from exactly its `register.count` raw registers (or bits)."""
    table = register.table
    if register.bit is None and table is not _COIL and table is not _DISCRETE:
        layout = _LAYOUTS.get((register.type, register.byte_order, register.word_order))
        if layout is not None:  # the hot path: a number
            return _scale(_unpack(words, layout), register.scale, register.offset)
        if register.type == "string":
            return _decode_string(words, register)
        if register.type != "bool":
            raise _no_layout(register.type, register.byte_order, register.word_order)
    return _decode_bool(words, register)


def _unpack(words: Sequence[int] | Sequence[bool], layout: _Layout) -> int | float:
    try:
        (raw,) = layout.value.unpack(layout.words.pack(*words))
    except (struct.error, TypeError):
        raise _bad_words(words, layout.count) from None
    return _number_from(raw, layout.info)


def _number_from(raw: int | float, info: TypeInfo) -> int | float:
    """The number a struct unpacked, as a reading carries it (before scale and offset)."""
    if not info.is_float:
        return int(raw)  # already an int; int() tells the type checker so
    if not math.isfinite(raw):
        # JSON cannot carry it, so it is a read error, not a reading (SPEC section 3).
        raise not_finite(raw)
    return shortest_float32(raw) if info.name == "float32" else float(raw)


# -- decode a whole response ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockCodec:
    """Every value of one planned read, decoded from its response with two struct calls.

    Built once per read request at planning. It applies when all values are numbers in one
    byte/word order, in address order without overlaps (the common case: a run of holding
    or input registers); holes between values are skipped with pad bytes. Values that are
    unscaled integers come out of the struct as they are; only floats and scaled values
    take a further step.
    """

    words: struct.Struct  # the whole response, packed in the values' shared word order
    values: struct.Struct  # every value at its offset, in one format
    float32s: tuple[int, ...]  # indices of the float32 values: made shortest all together
    steps: tuple[tuple[int, TypeInfo, float, float], ...]  # (index, type, scale, offset)


def block_codec(values: Sequence[tuple[Register, int]], count: int) -> BlockCodec | None:
    """The codec of a read of `count` registers carrying (register, offset) `values`, or
    None when they do not fit one (bits, strings, mixed orders, overlaps, out of order)."""
    if not values:
        return None
    first = values[0][0]
    orders = (first.byte_order, first.word_order)
    fields: list[str] = []
    steps: list[tuple[int, TypeInfo, float, float]] = []
    float32s: list[int] = []
    position = 0
    for index, (register, offset) in enumerate(values):
        layout = _LAYOUTS.get((register.type, register.byte_order, register.word_order))
        if layout is None or register.bit is not None or register.table in (_COIL, _DISCRETE):
            return None
        if (register.byte_order, register.word_order) != orders or offset < position:
            return None
        if offset > position:
            fields.append(f"{2 * (offset - position)}x")
        fields.append(layout.info.struct_code)
        scaled = register.scale != 1 or register.offset != 0
        if layout.info.name == "float32":
            float32s.append(index)
        if scaled or (layout.info.is_float and layout.info.name != "float32"):
            steps.append((index, layout.info, register.scale, register.offset))
        position = offset + layout.count
    if position > count:
        return None
    words_endian = ">" if orders[0] == orders[1] else "<"
    value_endian = ">" if orders[1] == "big" else "<"
    return BlockCodec(
        struct.Struct(f"{words_endian}{count}H"),
        struct.Struct(value_endian + "".join(fields) + f"{2 * (count - position)}x"),
        tuple(float32s),
        tuple(steps),
    )


def decode_block(
    codec: BlockCodec, block: Sequence[int]
) -> tuple[list[Value], list[tuple[int, CodecError]]] | None:
    """The values in the codec's order, exactly as `decode` gives them one by one, and
    (index, error) for each value that fails alone (its slot in the list is then unusable);
    None when the block is not `count` 16-bit words, so the caller decodes value by value
    and gets each value's precise error."""
    try:
        values: list[Value] = list(codec.values.unpack(codec.words.pack(*block)))
    except (struct.error, TypeError):
        return None
    errors = shorten_float32s(values, codec.float32s) if codec.float32s else []
    failed = {index for index, _ in errors}
    for index, info, scale, offset in codec.steps:
        if index in failed:
            continue
        try:
            raw = cast(int | float, values[index])  # a struct gives numbers only
            number = raw if info.name == "float32" else _number_from(raw, info)
            values[index] = _scale(number, scale, offset)
        except CodecError as exc:
            errors.append((index, exc))
    if failed and len(errors) > len(failed):
        errors.sort(key=lambda error: error[0])
    return values, errors


def _scale(raw: int | float, scale: float, offset: float) -> int | float:
    """raw x scale + offset; ints stay ints when that is exact, floats lose binary noise."""
    if scale == 1 and offset == 0:
        return raw
    rule = _scaling(scale, offset)
    if isinstance(raw, int) and rule.int_scale is not None and rule.int_offset is not None:
        return raw * rule.int_scale + rule.int_offset
    value = raw * scale + offset
    if not math.isfinite(value):
        raise CodecError(f"value is {value} after scale {scale} and offset {offset}")
    if isinstance(raw, int):
        # An integer times 0.1 has one true decimal; the rest (22.900000000000002) is noise.
        return value if rule.decimals is None else round(value, rule.decimals)
    # A float raw has no decimal grid; 15 significant digits drop the noise of x and +.
    return float(format(value, ".15g"))


def _bad_words(words: Sequence[object], count: int) -> CodecError:
    if len(words) != count:
        return CodecError(f"expected {count} register(s), got {len(words)}")
    for index, word in enumerate(words):
        if not isinstance(word, int) or not 0 <= word <= 0xFFFF:
            return CodecError(f"register {index} is {word!r}, not a 16-bit value 0..65535")
    return CodecError(f"cannot decode registers {list(words)!r}")


def _check_words(words: Sequence[object], count: int) -> None:
    if len(words) != count or not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in words):
        raise _bad_words(words, count)


def _decode_bool(words: Sequence[int] | Sequence[bool], register: Register) -> bool:
    if register.table.is_bits:
        if len(words) != 1 or not isinstance(words[0], int) or words[0] not in (0, 1):
            raise CodecError(f"expected one bit (0/1 or a bool), got {list(words)!r}")
        return bool(words[0])
    _check_words(words, 1)
    if register.bit is None:
        return words[0] != 0  # a whole register used as a flag
    # Bits are numbered on the register as it arrives (bit 0 = least significant), as device
    # manuals number them; byte_order is about multi-byte values, not flag words.
    return bool(words[0] >> _checked_bit(register.bit) & 1)


def _checked_bit(bit: int) -> int:
    if not 0 <= bit <= 15:
        raise CodecError(f"bit must be 0..15, not {bit}")
    return bit


def _decode_string(words: Sequence[int] | Sequence[bool], register: Register) -> str:
    _check_words(words, register.count)
    return _text(words, register.byte_order)


def _text(words: Sequence[int] | Sequence[bool], byte_order: str) -> str:
    # Characters follow the registers in order, so word_order does not apply to strings.
    data = struct.pack(f"{'>' if byte_order == 'big' else '<'}{len(words)}H", *words)
    data = data.rstrip(b"\x00 ")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte is a character: never fails


# -- encode -------------------------------------------------------------------------------


def encode(value: Value, register: Register) -> list[int] | list[bool]:
    """The registers (or the bit) to write so that `register` reads back as `value`."""
    if register.bit is not None or register.table.is_bits or register.type == "bool":
        return _encode_bool(value, register)
    if register.type == "string":
        return _encode_string(value, register)
    layout = _layout(register.type, register.byte_order, register.word_order)
    raw = _unscale(_number(value, register), register)
    if not math.isfinite(raw):
        raise _range_error(value, layout.info, register)
    if layout.info.is_integer:
        raw = _whole_in_range(raw, value, layout.info, register)
    try:
        return list(layout.words.unpack(layout.value.pack(raw)))
    except (struct.error, OverflowError):
        raise _range_error(value, layout.info, register) from None


def encode_bit(value: bool, current_word: int, bit: int) -> int:
    """`current_word` with `bit` set to `value`: the word to write for a bit of a register."""
    _check_words([current_word], 1)
    mask = 1 << _checked_bit(bit)
    return current_word | mask if _flag(value) else current_word & ~mask & 0xFFFF


def _flag(value: object) -> bool:
    # 0/1 are accepted because a JSON command may well say `1`; 1.0 or "on" are parse's job.
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CodecError(f"expected true or false, got {value!r}")


def _encode_bool(value: Value, register: Register) -> list[int] | list[bool]:
    flag = _flag(value)
    if register.table.is_bits:
        return [flag]
    if register.bit is not None:
        raise CodecError("a bit of a register needs the current word: use encode_bit")
    return [int(flag)]


def _encode_string(value: Value, register: Register) -> list[int]:
    if not isinstance(value, str):
        raise CodecError(f"expected a string, got {value!r}")
    data = value.encode("utf-8")
    size = register.count * 2
    if len(data) > size:
        raise CodecError(f"string of {len(data)} bytes does not fit {register.count} registers")
    endian = ">" if register.byte_order == "big" else "<"
    return list(struct.unpack(f"{endian}{register.count}H", data.ljust(size, b"\x00")))


def _number(value: Value, register: Register) -> int | float:
    # bool is an int in Python, but `true` for a numeric register is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"expected a number for {register.type}, got {value!r}")
    if not math.isfinite(value):
        raise CodecError(f"cannot write {value}: not a finite number")
    return value


def _unscale(value: int | float, register: Register) -> int | float:
    """(value - offset) / scale, exact for integers where the scaling allows it."""
    scale, offset = register.scale, register.offset
    if scale == 1 and offset == 0:
        return value
    if scale == 0 or not math.isfinite(scale) or not math.isfinite(offset):
        raise CodecError(f"cannot invert scale {scale} and offset {offset}")
    rule = _scaling(scale, offset)
    if isinstance(value, int) and rule.int_scale is not None and rule.int_offset is not None:
        quotient, remainder = divmod(value - rule.int_offset, rule.int_scale)
        if remainder == 0:
            return quotient
    return (value - offset) / scale


def _whole_in_range(raw: int | float, value: Value, info: TypeInfo, register: Register) -> int:
    whole = round(raw)  # half to even; 229.00000000000003 (22.9 / 0.1) is 229
    lo, hi = info.min_value, info.max_value
    if (lo is not None and whole < lo) or (hi is not None and whole > hi):
        raise _range_error(value, info, register)
    return whole


def _range_error(value: object, info: TypeInfo, register: Register) -> CodecError:
    """Names the range in engineering units: what the user can write, not the raw limits."""
    if info.min_value is None or info.max_value is None:
        return CodecError(f"{value!r} does not fit {info.name}")
    lo, hi = info.min_value, info.max_value
    if info.is_integer:
        lo, hi = int(lo), int(hi)
    ends = sorted(_scale(end, register.scale, register.offset) for end in (lo, hi))
    scaling = ""
    if register.scale != 1 or register.offset != 0:
        scaling = f" with scale {register.scale} and offset {register.offset}"
    return CodecError(f"{value!r} is out of range for {info.name}{scaling}: {ends[0]}..{ends[1]}")


# -- commissioning ------------------------------------------------------------------------


def interpretations(words: Sequence[int]) -> list[tuple[str, str, str, Value]]:
    """Every plausible (type, byte_order, word_order, value) reading of raw registers.

    Numbers come from the leading registers each type needs; a string from all of them.
    Orders that cannot matter (word order of a 16-bit value) are listed once, as "big".
    """
    _check_words(words, len(words))
    found: list[tuple[str, str, str, Value]] = []
    for type_name in _NUMERIC_TYPES:
        count = TYPES[type_name].registers
        if count > len(words):
            continue
        for byte_order, word_order in _ORDERS:
            if count == 1 and word_order == "little":
                continue
            try:
                value = _unpack(words[:count], _layout(type_name, byte_order, word_order))
            except CodecError:
                continue  # NaN or infinity: not a plausible reading
            found.append((type_name, byte_order, word_order, value))
    for byte_order in ("big", "little"):
        text = _text(words, byte_order) if words else ""
        if text and text.isprintable():
            found.append(("string", byte_order, "big", text))
    return found
