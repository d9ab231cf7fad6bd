"""Read one register entry (shape and its own cross-field rules) into a fully resolved Register."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field, fields

from .addressing import MAX_ADDRESS, Address, AddressError, parse_address, parse_table
from .fields import (
    MISSING,
    EnvText,
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
register_name = segment_name(RESERVED_REGISTER)


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


# The keys that tell registers of one shape apart (see RegisterReader).
_OWN_KEYS = ("name", "address")
_SCALARS = frozenset({str, EnvText, int, float, bool, type(None)})
_FIELD = {f.name: i for i, f in enumerate(fields(Register))}
_NAME, _PARAMETER, _ADDRESS, _WRITTEN = (
    _FIELD[k] for k in ("name", "parameter", "address", "register_address")
)
_ShapeKey = tuple[Table, tuple[tuple[object, type, object], ...]]


@dataclass(frozen=True)
class _Shape:
    """A register read by `read_register` without a problem, for the registers like it."""

    values: tuple[object, ...]  # its fields, in order
    count: int  # registers it spans (the same for every register of the shape)
    own_parameter: bool  # `parameter` given (else it is the name)
    own_register_address: bool  # `register_address` given (else the address as written)
    # the registers of this shape built so far, by name (and its type), address, as written
    made: dict[tuple[type, str, int, int], Register] = field(
        default_factory=dict, compare=False, hash=False
    )


class Shapes:
    """The register shapes of a whole config, shared by the readers of all its devices.

    Devices of one model repeat one register list: a register of a known shape, name and
    address is then the very Register built for the first device (frozen, equal in every
    field), not another copy: scenario D's 20,000 registers are 20 objects (4.3 MB less).
    A shape is known per device defaults, which every register of the shape takes."""

    def __init__(self) -> None:
        self.by_defaults: dict[tuple[str, str, str], dict[_ShapeKey, _Shape]] = {}

    def of(self, defaults: RegisterDefaults) -> dict[_ShapeKey, _Shape]:
        interval = defaults.interval_s
        # the interval's type and exact bits too: 30 and 30.0 (or -0.0 and 0.0) stay apart
        exact = f"{type(interval).__name__}:{float(interval).hex()}"
        key = (defaults.byte_order, defaults.word_order, exact)
        return self.by_defaults.setdefault(key, {})


class RegisterReader:
    """Reads the registers of one device; those alike but for name and address, once.

    A register list repeats the same keys and values (type, unit, scale, ...) entry after
    entry. `read_register` reads the first register of each shape (same keys, same values
    but name and address, same table); when it finds no problem, each later register of
    that shape takes its fields, with its own name and address. Those are checked with what
    `read_register` uses for them (`register_name`, `parse_address`, the span check), and
    are the only inputs of `read_register` that differ within a shape: name sets the
    parameter when none is given, and the address as written the register_address. A
    register that fails any of that, or holds anything but plain values, goes through
    `read_register`, so every problem is found and worded by one reader.
    """

    def __init__(
        self, problems: Problems, defaults: RegisterDefaults, shapes: Shapes | None = None
    ) -> None:
        self.problems = problems
        self.defaults = defaults
        self.shapes: dict[_ShapeKey, _Shape] = (shapes or Shapes()).of(defaults)

    def read(self, path: str, raw: object) -> Register | None:
        if type(raw) is not dict:
            return read_register(path, raw, self.problems, self.defaults)
        try:  # the two keys that differ within a shape; a bad one is read_register's
            name = _name_of(raw.get("name"))
            location = _location_of(raw.get("address"), raw.get("table"))
        except (FieldError, AddressError, TypeError):  # TypeError: unhashable, not cached
            return read_register(path, raw, self.problems, self.defaults)
        key = _shape_key(raw, location.table)
        shape = self.shapes.get(key) if key is not None else None
        if shape is not None and location.address + shape.count - 1 <= MAX_ADDRESS:
            return _like(shape, name, location)
        seen = len(self.problems.items)
        register = read_register(path, raw, self.problems, self.defaults)
        if key is not None and register is not None and len(self.problems.items) == seen:
            self.shapes[key] = _Shape(
                tuple(getattr(register, f.name) for f in fields(Register)),
                register.count,
                raw.get("parameter") is not None,
                raw.get("register_address") is not None,
            )
        return register


# Devices of one model repeat the same names and addresses; both are pure, their results
# immutable. typed: `address: 1` and `address: true` (equal in Python) are told apart.
_name_of = functools.lru_cache(maxsize=65536, typed=True)(register_name)
_location_of = functools.lru_cache(maxsize=65536, typed=True)(parse_address)


def _shape_key(raw: dict[object, object], table: Table) -> _ShapeKey | None:
    """Every key and value of `raw` but name and address, with their types (so `1`, `1.0`
    and `true` differ), or None when a value is not a plain scalar."""
    items: list[tuple[object, type, object]] = []
    for key, value in raw.items():
        if key in _OWN_KEYS:
            continue
        kind = type(value)
        if kind not in _SCALARS:
            return None
        # -0.0 == 0.0, yet an offset of -0.0 keeps a reading of -0.0 negative
        items.append((key, kind, value.hex() if kind is float else value))  # type: ignore[attr-defined]
    return table, tuple(items)


def _like(shape: _Shape, name: str, location: Address) -> Register:
    made = (type(name), name, location.address, location.written)
    register = shape.made.get(made)
    if register is None:
        register = shape.made[made] = _new_like(shape, name, location)
    return register


def _new_like(shape: _Shape, name: str, location: Address) -> Register:
    values = list(shape.values)
    values[_NAME] = name
    values[_ADDRESS] = location.address
    if not shape.own_parameter:
        values[_PARAMETER] = name
    if not shape.own_register_address:
        values[_WRITTEN] = location.written
    return Register(*values)  # type: ignore[arg-type]


def read_register(
    path: str, raw: object, problems: Problems, defaults: RegisterDefaults
) -> Register | None:
    """The resolved Register, or None (with problems recorded) when it cannot be built."""
    f = Fields(raw, path, problems)
    if not f.ok:
        return None
    name = f.required("name", register_name)
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
