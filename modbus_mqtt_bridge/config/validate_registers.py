"""Read one register entry (shape and its own cross-field rules) into a fully resolved Register."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .addressing import MAX_ADDRESS, Address, AddressError, parse_address, parse_table
from .fields import (
    MISSING,
    FieldError,
    Fields,
    Problems,
    Unresolved,
    choice_converter,
    describe,
    int_in,
    segment_name,
)
from .model import BitWrite, ByteOrder, Register
from .types import ALIASES, TYPES, Table, canonical_type

ORDERS: dict[str, ByteOrder] = {"big": "big", "little": "little"}
BIT_WRITES: dict[str, BitWrite] = {
    "read-modify-write": "read-modify-write",
    "read_modify_write": "read-modify-write",
    "rmw": "read-modify-write",
    "mask": "mask",
}
RESERVED_REGISTER = {
    "status": "{site}/{device}/status is the device's availability topic",
    "set": "{site}/{device}/set takes write commands for several registers",
}
TABLE_LABELS = {  # a table as a message names it
    Table.COIL: "coil",
    Table.DISCRETE: "discrete input",
    Table.INPUT: "input register",
    Table.HOLDING: "holding register",
}
NUMERIC_ONLY = ("scale", "offset", "deadband", "min", "max")
MAX_STRING_REGISTERS = 125  # one read request carries at most 125 registers


@dataclass(frozen=True)
class RegisterDefaults:
    """What a device passes down to each of its registers."""

    byte_order: ByteOrder
    word_order: ByteOrder
    interval_s: float


@dataclass(frozen=True)
class _Type:
    key: str  # `type` or `data_type`: where the user wrote it
    written: str
    canonical: str


def read_register(
    path: str, raw: object, problems: Problems, defaults: RegisterDefaults
) -> Register | None:
    """The resolved Register, or None (with problems recorded) when it cannot be built."""
    f = Fields(raw, path, problems)
    if not f.ok:
        return None
    name = f.required("name", segment_name(RESERVED_REGISTER))
    location = read_location(f)
    kind = read_type(f, location)
    register = _build(f, name or "", location, kind, defaults)
    f.finish()
    if location is None or kind is None:
        return None  # a bad name alone keeps the register ("") for the cross-entry checks
    _check_shape(f, register, kind.key)
    _check_numeric_options(f, register)
    return register


def _build(
    f: Fields,
    name: str,
    location: Address | None,
    kind: _Type | None,
    defaults: RegisterDefaults,
) -> Register:
    """Read every remaining key; placeholders stand in where table or type were unusable."""
    written = location.written if location else 0
    return Register(
        name=name,
        parameter=f.text("parameter", name),
        table=location.table if location else Table.HOLDING,
        address=location.address if location else 0,
        register_address=f.convert("register_address", written_address, written),
        type=kind.canonical if kind else "uint16",
        data_type=kind.written if kind else "",
        interval_s=f.duration("interval", defaults.interval_s),
        byte_order=f.choice("byte_order", defaults.byte_order, ORDERS),
        word_order=f.choice("word_order", defaults.word_order, ORDERS),
        bit=f.convert("bit", int_in(0, 15), None),
        bit_write=f.choice("bit_write", "read-modify-write", BIT_WRITES),
        length=f.convert("length", int_in(1, MAX_STRING_REGISTERS), None),
        scale=f.number("scale", 1.0),
        offset=f.number("offset", 0.0),
        engineering_unit=f.opt_text("unit"),
        deadband=f.opt_number("deadband", 0.0),
        max_age_s=f.opt_duration("max_age"),
        writable=f.boolean("writable", False),
        min=f.opt_number("min"),
        max=f.opt_number("max"),
        description=f.opt_text("description"),
        device_class=f.convert("device_class", _ha_class, None),
        state_class=f.convert("state_class", choice_converter(STATE_CLASSES), None),
    )


# Home Assistant's sensor state classes; device classes are too many (and grow) to list.
STATE_CLASSES = {name: name for name in ("measurement", "total", "total_increasing")}
_HA_CLASS = re.compile(r"^[a-z][a-z0-9_]*$")


def _ha_class(value: object) -> str:
    if not isinstance(value, str) or not _HA_CLASS.match(value.strip()):
        raise FieldError(
            f"expected a Home Assistant device class (e.g. energy), got {describe(value)}"
        )
    return value.strip()


def written_address(value: object) -> int:
    """`register_address`: the number the payload carries; its source text, so 00010 is 10."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return int_in(0, None)(value)


def read_location(f: Fields) -> Address | None:
    """Table and 0-based address from `address` (Modicon, or 0-based with `table`)."""
    table, value = f.get("table"), f.get("address")
    if value is MISSING:
        f.report("address", "missing required key")
        return None
    if isinstance(value, Unresolved) or isinstance(table, Unresolved):
        return None
    try:
        resolved = None if table is MISSING else parse_table(table)
    except AddressError as exc:
        f.report("table", str(exc))
        return None
    try:
        return parse_address(value, resolved)
    except AddressError as exc:
        f.report("address", str(exc))
        return None


def read_type(f: Fields, location: Address | None) -> _Type | None:
    """The type from `type` (or its legacy synonym `data_type`); bits default to bool."""
    key = "type"
    if f.present("type") and f.present("data_type"):
        f.report("data_type", "give either type or data_type, not both")
    elif f.present("data_type"):
        key = "data_type"
    value = f.get(key)
    if value is MISSING:
        if f.present("bit") or (location is not None and location.table.is_bits):
            return _Type(key, "bool", "bool")
        if location is not None:  # with a bad address we cannot tell whether bool was meant
            f.report("type", f"missing required key (one of {', '.join(TYPES)})")
        return None
    if isinstance(value, Unresolved):
        return None
    if not isinstance(value, str):
        f.report(key, f"expected a type name (e.g. float32), got {describe(value)}")
        return None
    canonical = canonical_type(value)
    if canonical is None:
        f.report(key, f"unknown type {value!r}{_type_hint(value)}")
        return None
    return _Type(key, value.strip(), canonical)


def _type_hint(written: str) -> str:
    """Closest name among types and aliases, shown as its canonical type (flot -> float32)."""
    hits = difflib.get_close_matches(written.strip().lower(), [*TYPES, *ALIASES], n=1)
    return f" (did you mean {canonical_type(hits[0])}?)" if hits else ""


def _check_shape(f: Fields, reg: Register, type_key: str) -> None:
    """Rules tying type, table, bit, length and writable together."""
    label = TABLE_LABELS[reg.table]
    if reg.type == "string" and reg.length is None:
        f.report("length", "required for type string (its length in registers)")
    if reg.length is not None and reg.type != "string":
        f.report("length", f"applies to type string only, not {reg.data_type}")
    if reg.bit is not None and reg.table.is_bits:
        f.report("bit", f"a {label} is a single bit already: remove bit")
    elif reg.bit is not None and reg.type != "bool":
        f.report("bit", f"bit needs type bool, not {reg.data_type}")
    elif reg.type == "bool" and not (reg.table.is_bits or f.present("bit")):
        f.report(type_key, f"type bool on a {label} needs bit: N (0..15)")
    if f.present("bit_write") and (reg.bit is None or reg.table is not Table.HOLDING):
        f.report("bit_write", "applies to a bit (bit: N) of a holding register only")
    elif f.present("bit_write") and not reg.writable:
        f.report("bit_write", "applies to writable registers only (writable: true)")
    if reg.table.is_bits and reg.type != "bool":
        f.report(type_key, f"a {label} holds one bit: use type bool, not {reg.data_type}")
    if reg.writable and not reg.table.is_writable_table:
        target = "holding register" if reg.table is Table.INPUT else "coil"
        article = "an" if label[0] in "aeiou" else "a"
        f.report("writable", f"{article} {label} is read-only: only a {target} can be written")
    end = reg.address + reg.count - 1
    if end > MAX_ADDRESS:
        f.report(
            "address",
            f"{reg.data_type} at {label} {reg.address} spans {reg.count}, past {MAX_ADDRESS}",
        )


def _check_numeric_options(f: Fields, reg: Register) -> None:
    if reg.type in ("bool", "string"):
        for key in NUMERIC_ONLY:
            if f.present(key):
                f.report(key, f"applies to numeric types only, not {reg.data_type}")
        return
    if reg.scale == 0:
        f.report("scale", "must not be 0")
    if reg.min is not None and reg.max is not None and reg.min > reg.max:
        f.report("min", f"min {reg.min:g} is greater than max {reg.max:g}")
