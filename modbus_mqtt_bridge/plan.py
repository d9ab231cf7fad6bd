"""Compile a config into a read plan: the fewest Modbus reads that cover every register.

Registers are grouped by (connection, device, table, interval) — only those can share one
read — then sorted by address and merged with their neighbours while the read stays within
the protocol limits and the holes stay within the device's `max_gap`. The plan is built once;
the poll loop only executes it, `validate` prints it (`format_plan`), `run` logs its summary.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

from . import codec
from .config.model import Config, Connection, Device, Register
from .config.types import Table
from .errors import ConfigError, Problem

# Modbus Application Protocol v1.1b3, 6.1-6.4: the largest quantity one read may ask for.
MAX_READ_REGISTERS = 125  # FC3 / FC4
MAX_READ_BITS = 2000  # FC1 / FC2

# `max_gap` is configured in registers. On a bit table it is scaled by 16: skipping 16 unused
# bits costs the same two response bytes as skipping one unused register, so one knob keeps
# the same meaning ("bytes we accept to read for nothing") on every table.
BITS_PER_REGISTER = 16

_FUNCTION_CODES = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}
_MODICON_PREFIX = {Table.COIL: "0", Table.DISCRETE: "1", Table.INPUT: "3", Table.HOLDING: "4"}
_LIST_AT_MOST = 6  # requests listed per device and interval before "... and N more"


@dataclass(frozen=True, slots=True)
class PlannedValue:
    """One register inside a read: its words (or bits) start at `offset` in the response."""

    register: Register
    offset: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read, executed as a whole, that carries one or more values."""

    connection: str
    device: Device
    table: Table
    address: int  # 0-based first register (or bit)
    count: int  # registers (or bits) read
    interval_s: float
    values: tuple[PlannedValue, ...]
    # The response's decoder, compiled once here so the poll loop only runs it (None: decode
    # value by value). Derived from the fields above, so it takes no part in equality.
    block: codec.BlockCodec | None = field(init=False, default=None, compare=False, repr=False)
    registers: tuple[Register, ...] = field(init=False, default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        memo = _COMPILED.get()
        key = (self.count, *[(id(v.register), v.offset) for v in self.values])
        compiled = memo.get(key) if memo is not None else None
        if compiled is None:
            pairs = [(v.register, v.offset) for v in self.values]
            registers = tuple(v.register for v in self.values)
            compiled = self.values, codec.block_codec(pairs, self.count), registers
            if memo is not None:
                memo[key] = compiled
        # the first equal read's parts (the very same registers at the same offsets)
        values, block, registers = compiled
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "registers", registers)

    @property
    def function_code(self) -> int:
        return _FUNCTION_CODES[self.table]

    @property
    def unit_id(self) -> int:
        return self.device.unit_id

    @property
    def end(self) -> int:
        """One past the last register (or bit) read."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Plan:
    """Every read of a config, ordered by connection, device, interval, function code, address."""

    requests: tuple[ReadRequest, ...]

    def for_connection(self, name: str) -> tuple[ReadRequest, ...]:
        return tuple(r for r in self.requests if r.connection == name)

    def for_device(self, name: str) -> tuple[ReadRequest, ...]:
        return tuple(r for r in self.requests if r.device.name == name)

    def connections(self) -> tuple[str, ...]:
        """Connection names that have at least one read, in plan order."""
        return tuple(dict.fromkeys(r.connection for r in self.requests))

    def intervals(self) -> tuple[float, ...]:
        """The distinct poll intervals, shortest first."""
        return tuple(sorted({r.interval_s for r in self.requests}))

    @property
    def value_count(self) -> int:
        return sum(len(r.values) for r in self.requests)


def read_limit(table: Table) -> int:
    """The most registers (or bits) one read of this table may ask for."""
    return MAX_READ_BITS if table.is_bits else MAX_READ_REGISTERS


def gap_limit(table: Table, max_gap: int) -> int:
    """The largest hole, in this table's units, a read may bridge."""
    return max_gap * BITS_PER_REGISTER if table.is_bits else max_gap


# While a plan is built: the parts of each read made so far, by its span and its values'
# registers (by identity: the config shares one Register among devices of one model) and
# offsets. Equal reads of many devices then share one values tuple, one decoder and one
# register tuple (scenario D: 1,000 reads, 2.7 -> 0.5 MB). Kept for one build only.
_Compiled = tuple[tuple[PlannedValue, ...], "codec.BlockCodec | None", tuple[Register, ...]]
_COMPILED: ContextVar[dict[tuple[object, ...], _Compiled] | None] = ContextVar(
    "compiled_reads", default=None
)


def build_plan(config: Config) -> Plan:
    """The read plan of a config; ConfigError if a value cannot fit in one read."""
    _check_fits(config)
    requests: list[ReadRequest] = []
    token = _COMPILED.set({})
    try:
        for device in _devices_by_connection(config):
            requests.extend(_device_requests(device))
    finally:
        _COMPILED.reset(token)
    return Plan(tuple(requests))


def _check_fits(config: Config) -> None:
    # Validation should already refuse these; the plan refuses too rather than emit a read
    # the device would answer with "illegal data value".
    problems = [
        Problem(
            f"devices[{d}].registers[{r}]",
            f"spans {reg.count} registers; one read carries at most {read_limit(reg.table)}",
        )
        for d, device in enumerate(config.devices)
        for r, reg in enumerate(device.registers)
        if reg.count > read_limit(reg.table)
    ]
    if problems:
        raise ConfigError(problems)


def _devices_by_connection(config: Config) -> list[Device]:
    """Devices in connection order (as configured), then config order within a connection."""
    order = {c.name: i for i, c in enumerate(config.connections)}
    # Unknown connections (refused by validation) sort last instead of failing here.
    return sorted(config.devices, key=lambda d: order.get(d.connection, len(order)))


def _device_requests(device: Device) -> list[ReadRequest]:
    groups: dict[tuple[float, int], list[Register]] = defaultdict(list)
    for reg in device.registers:
        groups[(reg.interval_s, _FUNCTION_CODES[reg.table])].append(reg)
    requests: list[ReadRequest] = []
    for key in sorted(groups):  # shortest interval first, then by function code
        regs = groups[key]
        requests.extend(_merge(device, regs[0].table, key[0], regs))
    return requests


def _merge(
    device: Device, table: Table, interval_s: float, regs: list[Register]
) -> list[ReadRequest]:
    """Greedy merge of one group in address order (stable: ties keep config order)."""
    limit, gap = read_limit(table), gap_limit(table, device.max_gap)
    runs: list[tuple[list[Register], int, int]] = []  # (values, first address, end)
    run: list[Register] = []
    start = end = 0
    for reg in sorted(regs, key=_address):
        address = reg.address
        reg_end = address + reg.count
        # A negative hole is an overlap (e.g. a bit of a register already read): it joins
        # like a neighbour, still within the limit.
        if run and address - end <= gap and max(end, reg_end) - start <= limit:
            run.append(reg)
            end = max(end, reg_end)
        else:
            if run:
                runs.append((run, start, end))
            run = [reg]
            start, end = address, reg_end
    if run:
        runs.append((run, start, end))
    return [
        ReadRequest(
            device.connection,
            device,
            table,
            start,
            end - start,
            interval_s,
            tuple([PlannedValue(r, r.address - start) for r in run]),
        )
        for run, start, end in runs
    ]


_address = operator.attrgetter("address")


def minimum_requests(registers: Iterable[Register]) -> int:
    """The fewest reads that cover these registers of one device without reading a hole.

    A read carries whole values only (a float32 is never split), touching or overlapping
    values of one table and interval may share it, and its span stays within the limit.
    Packing values in address order, greedily, is optimal for that; the benchmark compares
    `build_plan` (which may also read across holes up to `max_gap`) against it.
    """
    groups: dict[tuple[Table, float], list[tuple[int, int]]] = defaultdict(list)
    for reg in registers:
        groups[(reg.table, reg.interval_s)].append((reg.address, reg.address + reg.count))
    return sum(_greedy_reads(spans, read_limit(table)) for (table, _), spans in groups.items())


def minimum_requests_for(config: Config) -> int:
    """`minimum_requests` summed over every device of a config."""
    return sum(minimum_requests(d.registers) for d in config.devices)


def _greedy_reads(spans: list[tuple[int, int]], limit: int) -> int:
    reads = 0
    start = end = -1
    for s, e in sorted(spans):
        if reads and s <= end and max(end, e) - start <= limit:
            end = max(end, e)  # touches the current read and still fits
            continue
        reads += 1
        start, end = s, e
    return reads


# --- the text `validate` prints -------------------------------------------------------------


def format_plan(plan: Plan, config: Config) -> str:
    """The plan for a human: per connection, device and interval, its reads and their load."""
    lines: list[str] = []
    names = [c.name for c in config.connections]
    names += [n for n in plan.connections() if n not in names]
    for name in names:
        lines.extend(_format_connection(plan, config, name))
    total = f"{_plural(len(plan.requests), 'request')}, {_plural(plan.value_count, 'value')}"
    lines.append(f"total: {total}, {_rate(plan.requests)} requests/s")
    return "\n".join(lines) + "\n"


def _format_connection(plan: Plan, config: Config, name: str) -> list[str]:
    requests = plan.for_connection(name)
    conn = next((c for c in config.connections if c.name == name), None)
    where = _describe_connection(conn) if conn else "not configured"
    head = f"connection {name} ({where}): {_plural(len(requests), 'request')}"
    lines = [f"{head}, {_rate(requests)} requests/s"]
    for device in config.devices:
        if device.connection == name:
            own = [r for r in requests if r.device.name == device.name]
            lines.extend(_format_device(device, own))
    return lines


def _format_device(device: Device, requests: list[ReadRequest]) -> list[str]:
    head = f"  {device.name} (unit {device.unit_id})"
    if not requests:
        return [f"{head}: no registers"]
    lines = [head]
    for interval_s in sorted({r.interval_s for r in requests}):
        batch = [r for r in requests if r.interval_s == interval_s]
        values = sum(len(r.values) for r in batch)
        counts = f"{_plural(len(batch), 'request')}, {_plural(values, 'value')}"
        lines.append(f"    every {format_duration(interval_s)}: {counts}")
        lines.extend(f"      {_format_request(r)}" for r in batch[:_LIST_AT_MOST])
        if len(batch) > _LIST_AT_MOST:
            lines.append(f"      ... and {len(batch) - _LIST_AT_MOST} more")
    return lines


def _format_request(request: ReadRequest) -> str:
    """E.g. `FC3 40001..40010 (holding 0..9, 10 regs, 4 values)`."""
    first, last = request.address, request.end - 1
    wide = last + 1 > 9999  # 6-digit Modicon as soon as the 5-digit form cannot hold it
    modicon = _modicon(request.table, first, wide)
    protocol = str(first)
    if last != first:
        modicon += f"..{_modicon(request.table, last, wide)}"
        protocol += f"..{last}"
    size = _plural(request.count, "bit" if request.table.is_bits else "reg")
    detail = f"{request.table.value} {protocol}, {size}, {_plural(len(request.values), 'value')}"
    return f"FC{request.function_code} {modicon} ({detail})"


def _modicon(table: Table, address: int, wide: bool) -> str:
    return f"{_MODICON_PREFIX[table]}{address + 1:0{5 if wide else 4}d}"


def _describe_connection(conn: Connection) -> str:
    if conn.type == "rtu":
        return f"rtu {conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"
    return f"{conn.type} {conn.host}:{conn.port if conn.port is not None else 502}"


def format_duration(seconds: float) -> str:
    """A duration as the config would write it: `500ms`, `5s`, `2.5s`, `30min`, `1h`."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}min"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


def _rate(requests: Iterable[ReadRequest]) -> str:
    """Reads per second: the load an operator compares with what the bus can carry."""
    rate = sum(1.0 / r.interval_s for r in requests if r.interval_s > 0)
    return f"{rate:.0f}" if rate >= 1000 else f"{rate:.3g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
