"""Turn an address as written (Modicon `40001`, or `table:` + 0-based address) into table + offset.

Modicon notation: the first digit names the table (0 coil, 1 discrete input, 3 input register,
4 holding register), the remaining 4 or 5 digits are the 1-based register number. So `40001`
and `400001` are holding register 0, `00001` is coil 0.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass

from .types import Table

MAX_ADDRESS = 65535

_MODICON_TABLES: dict[str, Table] = {
    "0": Table.COIL,
    "1": Table.DISCRETE,
    "3": Table.INPUT,
    "4": Table.HOLDING,
}
_MODICON_DIGITS = {table: digit for digit, table in _MODICON_TABLES.items()}

TABLE_NAMES: dict[str, Table] = {
    "holding": Table.HOLDING,
    "holding_register": Table.HOLDING,
    "holding_registers": Table.HOLDING,
    "input": Table.INPUT,
    "input_register": Table.INPUT,
    "input_registers": Table.INPUT,
    "coil": Table.COIL,
    "coils": Table.COIL,
    "discrete": Table.DISCRETE,
    "discrete_input": Table.DISCRETE,
    "discrete_inputs": Table.DISCRETE,
}


class AddressError(ValueError):
    """An address or table that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Address:
    """Where a value lives: its table, its 0-based protocol address, and the number as written."""

    table: Table
    address: int
    written: int


def parse_table(name: object) -> Table:
    """The table for a name as written (`holding`, `input_register`, `coils`...)."""
    if isinstance(name, Table):
        return name
    if not isinstance(name, str):
        raise AddressError(f"expected a table name (holding, input, coil, discrete), got {name!r}")
    table = TABLE_NAMES.get(name.strip().lower())
    if table is None:
        hint = difflib.get_close_matches(name.strip().lower(), list(TABLE_NAMES), n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise AddressError(
            f"unknown table {name!r}{suggestion}; use holding, input, coil or discrete"
        )
    return table


def parse_address(value: object, table: object = None) -> Address:
    """Resolve `value` (int, or its source text) as Modicon, or as 0-based when `table` is given."""
    text = _address_text(value)
    if table is None:
        return _parse_modicon(text)
    resolved = parse_table(table)
    number = _parse_number(text)
    if number > MAX_ADDRESS:
        raise AddressError(f"address {text} is out of range (0..{MAX_ADDRESS} with table:)")
    return Address(resolved, number, number)


def _address_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AddressError(f"expected an address (e.g. 40001), got {value!r}")
    text = str(value).strip().replace("_", "")
    if text.startswith("-"):
        raise AddressError(f"address {text} must not be negative")
    return text


def _parse_number(text: str) -> int:
    """A 0-based address: decimal (leading zeros are decimal, not octal) or 0x hexadecimal."""
    digits = text[2:] if text.lower().startswith("0x") else None
    if digits and all(c in string.hexdigits for c in digits):
        return int(digits, 16)
    if text.isdigit() and text.isascii():
        return int(text, 10)
    raise AddressError(f"invalid address {text!r}: use a decimal number or 0x hexadecimal")


def _parse_modicon(text: str) -> Address:
    if not (text.isdigit() and text.isascii()) or len(text) not in (5, 6):
        raise AddressError(
            f"address {text} is not Modicon notation (5 or 6 digits, e.g. 40001 or 00001); "
            "add table: to give a 0-based address"
        )
    table = _MODICON_TABLES.get(text[0])
    if table is None:
        raise AddressError(
            f"Modicon address {text} starts with {text[0]}: use 0 (coil), 1 (discrete input), "
            "3 (input register) or 4 (holding register)"
        )
    number = int(text[1:])
    if number == 0:
        raise AddressError(f"Modicon address {text}: numbering starts at 1 ({text[0]}0001)")
    if number - 1 > MAX_ADDRESS:
        raise AddressError(f"Modicon address {text} is out of range (at most {text[0]}65536)")
    return Address(table, number - 1, int(text))


def to_modicon(table: Table, address: int) -> str:
    """Modicon text for a 0-based address: 5 digits if they suffice, else 6 (`00001`, `465536`)."""
    if not 0 <= address <= MAX_ADDRESS:
        raise AddressError(f"address {address} is out of range (0..{MAX_ADDRESS})")
    digit = _MODICON_DIGITS[table]
    number = address + 1
    return f"{digit}{number:04d}" if number <= 9999 else f"{digit}{number:05d}"
