"""The per-type table: one row per data type drives validation, the codec and the planner."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Table(Enum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE = "discrete"
    INPUT = "input"
    HOLDING = "holding"

    # Members are singletons compared by identity, so the identity hash agrees with `==`;
    # Enum's own hashes the name in Python, and the planner keys on a table per register.
    __hash__ = object.__hash__

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def is_writable_table(self) -> bool:
        return self in (Table.COIL, Table.HOLDING)


@dataclass(frozen=True)
class TypeInfo:
    """What a data type needs: how many registers, how to pack it, its range."""

    name: str
    registers: int  # 0 for bool and string (bool: one bit; string: `length`)
    struct_code: str  # "" for bool and string
    is_integer: bool
    is_float: bool
    min_value: float | None
    max_value: float | None


def _int(name: str, bits: int, signed: bool, code: str) -> TypeInfo:
    lo = -(2 ** (bits - 1)) if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    return TypeInfo(name, bits // 16, code, True, False, lo, hi)


TYPES: dict[str, TypeInfo] = {
    "bool": TypeInfo("bool", 0, "", False, False, 0, 1),
    "int16": _int("int16", 16, True, "h"),
    "uint16": _int("uint16", 16, False, "H"),
    "int32": _int("int32", 32, True, "i"),
    "uint32": _int("uint32", 32, False, "I"),
    "int64": _int("int64", 64, True, "q"),
    "uint64": _int("uint64", 64, False, "Q"),
    "float32": TypeInfo(
        "float32", 2, "f", False, True, -3.4028234663852886e38, 3.4028234663852886e38
    ),
    "float64": TypeInfo("float64", 4, "d", False, True, None, None),
    "string": TypeInfo("string", 0, "", False, False, None, None),
}

# Names the legacy service and common tools use; the payload keeps the name as written.
ALIASES: dict[str, str] = {
    "float": "float32",
    "real": "float32",
    "double": "float64",
    "int": "int16",
    "integer": "int16",
    "uint": "uint16",
    "boolean": "bool",
    "coil": "bool",
}


def canonical_type(name: str) -> str | None:
    """The canonical type for a name as written in a config, or None if unknown."""
    key = name.strip().lower()
    if key in TYPES:
        return key
    return ALIASES.get(key)


def register_count(type_name: str, length: int | None = None) -> int:
    """Registers one value of this canonical type occupies (bool: 1 bit -> 1 slot)."""
    info = TYPES[type_name]
    if type_name == "string":
        return length or 1
    return info.registers or 1
