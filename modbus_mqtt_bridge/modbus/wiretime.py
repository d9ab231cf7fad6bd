"""Wire time of Modbus RTU traffic: how long frames and the silences between them hold a bus.

Pure. The Modbus serial line spec (V1.02, 2.5.1.1) counts 11 bits per character (start,
8 data, parity or a second stop bit, stop) and requires 3.5 character times of silence
between frames, fixed at 1.75 ms above 19200 baud. An 8N1 line sends 10 bits per
character, so for it these figures err ~9% on the safe side.

`validate` prints `format_estimates`; the worker's port uses `frame_gap`; the simulator's
line emulation uses `exchange_time`, so benchmark and estimate share one model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.model import Config, Connection
from ..config.types import Table
from ..plan import Plan, ReadRequest, format_duration

BITS_PER_CHAR = 11
FAST_BAUD = 19200  # above it the spec fixes the gaps instead of scaling them
FAST_GAP_S = 0.00175
READ_REQUEST_BYTES = 8  # unit, function, address (2), quantity (2), CRC (2)
RESPONSE_OVERHEAD_BYTES = 5  # unit, function, byte count, CRC (2)
WRITE_ECHO_BYTES = 8  # FC5/6/15/16 answers: unit, function, address, value/quantity, CRC
MAX_FRAME_BYTES = 256
SERIAL_TYPES = ("rtu", "rtu-over-tcp")


def char_time(baudrate: int) -> float:
    """Seconds one character occupies the line."""
    return BITS_PER_CHAR / baudrate


def inter_frame_delay(baudrate: int) -> float:
    """The spec's minimum silence between frames (t3.5)."""
    return 3.5 * char_time(baudrate) if baudrate <= FAST_BAUD else FAST_GAP_S


def frame_gap(conn: Connection) -> float:
    """The silence this connection keeps between frames: configured, else t3.5."""
    if conn.inter_frame_delay_s is not None:
        return conn.inter_frame_delay_s
    return inter_frame_delay(conn.baudrate)


def frame_time(n_bytes: int, baudrate: int) -> float:
    return n_bytes * char_time(baudrate)


def read_response_bytes(table: Table, count: int) -> int:
    """Size of the answer to a read of `count` registers (or bits)."""
    data = math.ceil(count / 8) if table.is_bits else 2 * count
    return RESPONSE_OVERHEAD_BYTES + data


def exchange_time(table: Table, count: int, baudrate: int, gap_s: float) -> float:
    """One read on the wire: request, silence, response, silence."""
    request = frame_time(READ_REQUEST_BYTES, baudrate)
    response = frame_time(read_response_bytes(table, count), baudrate)
    return request + gap_s + response + gap_s


@dataclass(frozen=True)
class BusEstimate:
    """One bus: the wire time of a full plan cycle against its shortest interval."""

    connection: Connection
    requests: int
    cycle_s: float  # every request of the bus once, back to back
    shortest_interval_s: float
    load: float  # wire seconds per second the schedule asks for (1.0 = bus full)

    @property
    def fits(self) -> bool:
        return self.cycle_s <= self.shortest_interval_s and self.load <= 1.0


def estimate_bus(conn: Connection, requests: Sequence[ReadRequest]) -> BusEstimate | None:
    """None for a bus without reads or a connection that is not a serial line."""
    if conn.type not in SERIAL_TYPES or not requests:
        return None
    gap = frame_gap(conn)
    times = [(exchange_time(r.table, r.count, conn.baudrate, gap), r.interval_s) for r in requests]
    return BusEstimate(
        connection=conn,
        requests=len(requests),
        cycle_s=sum(t for t, _ in times),
        shortest_interval_s=min(interval for _, interval in times),
        load=sum(t / interval for t, interval in times if interval > 0),
    )


def format_estimates(plan: Plan, config: Config) -> str:
    """Per serial bus: its cycle's wire time, and a warning when the schedule cannot fit."""
    lines: list[str] = []
    for conn in config.connections:
        estimate = estimate_bus(conn, plan.for_connection(conn.name))
        if estimate is not None:
            lines.extend(_format_estimate(estimate))
    return "\n".join(lines) + "\n" if lines else ""


def _format_estimate(e: BusEstimate) -> list[str]:
    conn = e.connection
    side = " (the gateway's serial side)" if conn.type == "rtu-over-tcp" else ""
    line = (
        f"bus {conn.name}: {conn.baudrate} baud{side}, one full cycle of {e.requests} "
        f"request{'s' if e.requests != 1 else ''} takes {_ms(e.cycle_s)} on the wire "
        f"({BITS_PER_CHAR} bits/char, {_ms(frame_gap(conn))} between frames); shortest "
        f"interval {format_duration(e.shortest_interval_s)}, bus load {e.load:.0%}"
    )
    lines = [line]
    if e.load > 1.0:
        lines.append(
            f"warning: bus {conn.name} cannot keep this schedule: it needs {e.load:.0%} of the "
            "wire; lengthen intervals, raise the baud rate or split the bus"
        )
    elif e.cycle_s > e.shortest_interval_s:
        lines.append(
            f"warning: bus {conn.name}: a full cycle ({_ms(e.cycle_s)}) is longer than the "
            f"shortest interval ({format_duration(e.shortest_interval_s)}); ticks will be late "
            "whenever every request falls due together"
        )
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
