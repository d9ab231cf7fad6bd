"""Checks across entries, after shape: unique names, known connections, disjoint writables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from .fields import Problems, suggest
from .model import Connection, Register
from .types import Table
from .validate_devices import DeviceEntry, Located
from .validate_registers import TABLE_LABELS

MAX_SERIAL_UNIT = 247  # Modbus serial line: 1..247; 0 is broadcast

_WriteKey = tuple[str, int, Table]  # (connection, unit id, table): one address space


def check_references(
    connections: list[Located], devices: list[DeviceEntry], problems: Problems
) -> None:
    by_name = {conn.name: conn for _, conn in connections}
    _report_duplicates(((p, c.name) for p, c in connections), "connection", problems)
    _report_duplicates(((e.path, e.device.name) for e in devices), "device", problems)
    for entry in devices:
        _check_connection(entry, by_name, problems)
        _report_duplicates(entry.register_names, "register", problems)
    _check_writable_overlaps(devices, problems)


def _report_duplicates(named: Iterable[tuple[str, str]], what: str, problems: Problems) -> None:
    """`named` holds (entry path, name); the problem goes on the later entry's `.name`."""
    first: dict[str, str] = {}
    for path, name in named:
        if not name:
            continue  # a missing or bad name was reported by the shape check
        if name in first:
            line = problems.line(f"{first[name]}.name")
            where = f"{first[name]}, line {line}" if line else first[name]
            problems.add(f"{path}.name", f"duplicate {what} name {name!r} (first: {where})")
        else:
            first[name] = path


def _check_connection(
    entry: DeviceEntry, connections: dict[str, Connection], problems: Problems
) -> None:
    device = entry.device
    if not device.connection:
        return  # missing or bad: already reported by the shape check
    conn = connections.get(device.connection)
    if conn is None:
        known = list(connections)
        hint = suggest(device.connection, known) or f" (known: {', '.join(known)})"
        hint = hint if known else " (no connections are defined)"
        problems.add(f"{entry.path}.connection", f"unknown connection {device.connection!r}{hint}")
        return
    serial = conn.type in ("rtu", "rtu-over-tcp")
    if serial and device.unit_id == 0:
        problems.add(f"{entry.path}.unit", "unit 0 is broadcast on a serial bus; use 1..247")
    elif serial and device.unit_id > MAX_SERIAL_UNIT:
        problems.add(f"{entry.path}.unit", f"serial unit ids are 1..247, not {device.unit_id}")


def _check_writable_overlaps(devices: list[DeviceEntry], problems: Problems) -> None:
    """Two writable registers sharing an address would make one command change the other."""
    groups: dict[_WriteKey, list[tuple[str, Register]]] = defaultdict(list)
    for entry in devices:
        for path, reg in zip(entry.register_paths, entry.device.registers, strict=True):
            if reg.writable:
                key = (entry.device.connection, entry.device.unit_id, reg.table)
                groups[key].append((path, reg))
    for members in groups.values():
        for i, (path, reg) in enumerate(members):
            clash = next((m for m in members[:i] if _overlap(m[1], reg)), None)
            if clash is not None:
                problems.add(
                    f"{path}.address",
                    f"writable register {reg.name!r} ({_span(reg)}) overlaps writable register "
                    f"{clash[1].name!r} ({_span(clash[1])}, {clash[0]})",
                )


def _overlap(a: Register, b: Register) -> bool:
    if a.bit is not None and b.bit is not None:
        return a.address == b.address and a.bit == b.bit
    return a.address <= b.address + b.count - 1 and b.address <= a.address + a.count - 1


def _span(reg: Register) -> str:
    label = TABLE_LABELS[reg.table]
    if reg.bit is not None:
        return f"{label} {reg.address} bit {reg.bit}"
    if reg.count == 1:
        return f"{label} {reg.address}"
    return f"{label}s {reg.address}..{reg.address + reg.count - 1}"
