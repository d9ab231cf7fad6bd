"""Read the `connections` and `devices` sections (shape only) into model objects with their paths.

Cross-entry checks (unknown connection, duplicates, overlaps) live in validate_refs.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .fields import (
    MISSING,
    EnvText,
    FieldError,
    Fields,
    Problems,
    Unresolved,
    describe,
    int_in,
    segment_name,
    to_text,
)
from .model import Connection, ConnectionType, Device, ModbusTls
from .validate_registers import ORDERS, RegisterDefaults, RegisterReader, Shapes

CONNECTION_TYPES: dict[str, ConnectionType] = {
    "tcp": "tcp",
    "rtu": "rtu",
    "rtu-over-tcp": "rtu-over-tcp",
    "rtu_over_tcp": "rtu-over-tcp",
    "rtuovertcp": "rtu-over-tcp",
}
PARITIES: dict[str, str] = {"n": "N", "none": "N", "e": "E", "even": "E", "o": "O", "odd": "O"}
SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")
MODBUS_TLS_PORT = 802  # Modbus/TCP Security's registered port
RESERVED_DEVICE = {"bridge": "{site}/bridge/status is the bridge's own status topic"}


@dataclass(frozen=True)
class DeviceEntry:
    """A device read from the config, with where it and each of its registers were written."""

    path: str
    device: Device
    register_paths: tuple[str, ...]
    # (path, name) of every register that has a name, built or not: a duplicate name is
    # reported even when the other register has a problem of its own.
    register_names: tuple[tuple[str, str], ...] = ()


Located = tuple[str, Connection]


def to_name(value: object) -> str:
    name = to_text(value)
    if not name.strip():
        raise FieldError("must not be empty")
    if not name.isprintable():  # names end up in logs and metric labels
        raise FieldError(f"{name!r} contains a control character")
    return name


def read_connections(top: Fields) -> list[Located]:
    found = [read_connection(path, raw, top.problems) for path, raw in top.items("connections")]
    return [entry for entry in found if entry is not None]


def read_connection(path: str, raw: object, problems: Problems) -> Located | None:
    f = Fields(raw, path, problems)
    if not f.ok:
        return None
    name = f.required("name", to_name)
    kind = f.choice("type", "tcp", CONNECTION_TYPES)
    tls = read_modbus_tls(f) if kind == "tcp" else None
    host, port = _read_endpoint(f, kind, MODBUS_TLS_PORT if tls else 502)
    connection = Connection(
        name=name or "",
        type=kind,
        host=host,
        port=port,
        timeout_s=f.duration("timeout", 3.0),
        baudrate=f.integer("baudrate", 9600, 1),
        parity=f.choice("parity", "N", PARITIES),  # type: ignore[arg-type]
        stopbits=f.integer("stopbits", 1, 1, 2),
        bytesize=f.integer("bytesize", 8, 5, 8),
        inter_frame_delay_s=f.opt_duration("inter_frame_delay", zero_ok=True),
        reconnect_max_s=f.duration("reconnect_max", 10.0),
        tls=tls,
    )
    _check_applicable(f, kind)
    f.finish()
    # Kept even when port is bad, so devices naming it do not also report "unknown connection".
    return None if name is None else (path, connection)


def _read_endpoint(
    f: Fields, kind: ConnectionType, default_port: int
) -> tuple[str | None, int | str | None]:
    if kind == "rtu":
        return None, f.required("port", serial_port, " (the serial port, e.g. /dev/ttyUSB0)")
    host = f.required("host", host_name, f" for a {kind} connection")
    return host, f.convert("port", tcp_port, default_port)


def read_modbus_tls(f: Fields) -> ModbusTls | None:
    """`tls: true` (system CAs), `tls: {ca_file, cert_file, key_file, server_hostname}`, or off."""
    value = f.get("tls")
    if isinstance(value, EnvText):
        value = value.as_scalar()
    if value is MISSING or value is False or isinstance(value, Unresolved):
        return None
    if value is True:
        return ModbusTls()
    if not isinstance(value, Mapping):
        f.report(
            "tls",
            "expected true, false or a mapping of ca_file, cert_file, key_file, server_hostname;"
            f" got {describe(value)}",
        )
        return None
    t = f.section("tls")
    tls = ModbusTls(
        ca_file=t.opt_text("ca_file"),
        cert_file=t.opt_text("cert_file"),
        key_file=t.opt_text("key_file"),
        server_hostname=t.convert("server_hostname", host_name, None),
    )
    if tls.key_file and not tls.cert_file:
        t.report("key_file", "key_file needs cert_file (the client certificate)")
    t.finish()
    return tls


def serial_port(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"expected a serial port like /dev/ttyUSB0 or COM3, got {describe(value)}")
    return str(value)


def host_name(value: object) -> str:
    host = to_text(value).strip()
    if not host or "://" in host or any(c.isspace() for c in host):
        raise FieldError(f"expected a host name or IP address, got {describe(value)}")
    return host


def tcp_port(value: object) -> int:
    # A quoted "502" (often from a quoted ${VAR}) is accepted: it cannot mean anything else.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return int_in(1, 65535)(value)


def _check_applicable(f: Fields, kind: ConnectionType) -> None:
    # rtu-over-tcp keeps the serial settings: the gateway's line speed sets the frame gaps
    # and the wire-time estimate, though the bridge itself speaks TCP
    if kind == "tcp":
        for key in SERIAL_KEYS:
            if f.present(key):
                f.report(key, "applies to rtu and rtu-over-tcp connections only, not tcp")
    elif kind == "rtu" and f.present("host"):
        f.report("host", "applies to tcp and rtu-over-tcp connections (rtu uses port:)")
    if kind != "tcp" and f.present("tls"):
        f.report("tls", f"applies to tcp connections only, not {kind}")
    if kind == "tcp" and f.present("inter_frame_delay"):
        f.report("inter_frame_delay", "applies to rtu and rtu-over-tcp connections only")


def read_devices(top: Fields, connections: list[Located]) -> list[DeviceEntry]:
    names = [conn.name for _, conn in connections]
    shapes = Shapes()  # devices of one model share their registers
    found = [
        read_device(path, raw, top.problems, names, shapes) for path, raw in top.items("devices")
    ]
    return [entry for entry in found if entry is not None]


def read_device(
    path: str,
    raw: object,
    problems: Problems,
    connection_names: list[str],
    shapes: Shapes | None = None,
) -> DeviceEntry | None:
    f = Fields(raw, path, problems)
    if not f.ok:
        return None
    name = f.required("name", segment_name(RESERVED_DEVICE))
    connection = _read_connection_ref(f, connection_names)
    defaults = RegisterDefaults(
        byte_order=f.choice("byte_order", "big", ORDERS),
        word_order=f.choice("word_order", "big", ORDERS),
        interval_s=f.duration("interval", 30.0),
    )
    items = _register_items(f)
    reader = RegisterReader(f.problems, defaults, shapes)
    found = [(path, reader.read(path, raw)) for path, raw in items]
    registers = [(path, register) for path, register in found if register is not None]
    device = Device(
        name=name or "",
        id=f.convert("id", int_in(0, None), None),
        connection=connection or "",
        unit_id=f.integer("unit", 1, 0, 255),
        registers=tuple(register for _, register in registers),
        byte_order=defaults.byte_order,
        word_order=defaults.word_order,
        interval_s=defaults.interval_s,
        max_gap=f.integer("max_gap", 10, 0, 125),
        always_fc16=f.boolean("always_fc16", False),
        turnaround_delay_s=f.duration("turnaround_delay", 0.0, zero_ok=True),
        description=f.opt_text("description"),
    )
    f.finish()
    # Kept with a bad name (""), so its connection and registers are still cross-checked.
    named = tuple(_register_names(items))
    return DeviceEntry(path, device, tuple(p for p, _ in registers), named)


def _register_names(items: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """(path, name) of each register written as a mapping with a text name."""
    return [
        (path, name)
        for path, raw in items
        if isinstance(raw, dict | Mapping) and isinstance(name := raw.get("name"), str) and name
    ]


def _read_connection_ref(f: Fields, names: list[str]) -> str | None:
    """The device's connection; may be left out when the config has exactly one."""
    if f.present("connection") or len(names) != 1:
        known = f" (one of: {', '.join(names)})" if names else ""
        return f.required("connection", to_name, known)
    return names[0]


def _register_items(f: Fields) -> list[tuple[str, object]]:
    """(path, raw entry) of each register; an empty, missing or non-list value is reported."""
    if f.get("registers") is MISSING:
        f.report("registers", "missing required key: a device needs at least one register")
        return []
    items = f.items("registers")
    if f.get("registers") in ([], ()):
        f.report("registers", "a device needs at least one register")
    return items
