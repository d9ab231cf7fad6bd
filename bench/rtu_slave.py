"""A lean emulated RTU line with its slaves, for bench/rtu_bench.py: answers on time, no relay.

    .venv/bin/python bench/rtu_slave.py --baud 115200 --units 1,2,3 [--registers 10]

The project's simulator behind a socat pty pair lets each answer arrive 0.84 ms (median)
after the wire time a real line would take: socat's relay and a wake-up of the simulator on
the way in (0.29 ms), its write (0.06 ms) and the relay back (0.34 ms). At 115,200 baud that
is 12.6 % of a 20 ms cycle of three reads before any master has done anything, so the
simulator's rig could not tell a master within 15 % of the wire-time limit from one that is
not (docs/benchmarks.md, the make bench table's notes).

This line has no relay: it opens a pty pair itself and prints the path of the end a master
opens (`/dev/pts/N`), keeping the other end. It spins on that end (non-blocking reads, no
sleep: a wake-up here would be the rig's delay again; it uses a core while it runs, which on
2 cores is the core the master is not using) and notes when a request's first byte came.
It writes each answer when the wire would have delivered it, counted from that byte: the
request's own wire time, the slave's t3.5 and the answer's wire time (the simulator's model,
`wiretime.exchange_time` minus the master's own gap, which the master keeps). Serves read
holding / input registers (functions 3 and 4) of the given units from a fixed table; any
other unit id gets no answer, like a unit not on the line; a request with a bad CRC neither
(the line slides past a stray byte to the next frame).

It cannot reward a master that breaks the line's rules: a request that arrives before the
t3.5 silence after the last answer has passed (a cut gap, a request sent while the answer
was on the wire) is counted, and on SIGTERM the slave prints `gap_violations N` for the
bench to report. It is an ideal line (no UART buffering, no USB adapter latency): the cycle
it gives is the master's own overhead over the wire time, not what real hardware shows.
It exits by itself when the process that started it is gone (it would spin a core forever).
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import sys
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.modbus.frames import crc_ok, with_crc
from modbus_mqtt_bridge.modbus.wiretime import exchange_time, inter_frame_delay

REQUEST_BYTES = 8  # unit, function, address (2), quantity (2), CRC (2)
TABLES = {3: Table.HOLDING, 4: Table.INPUT}


def answer(request: bytes, units: set[int], registers: int) -> bytes | None:
    """The response to one read request, or None when no unit on the line answers it."""
    unit, function, address, count = struct.unpack(">BBHH", request[:6])
    if unit not in units or function not in TABLES or not crc_ok(request):
        return None
    if address + count > registers or count < 1:
        return with_crc(bytes((unit, function | 0x80, 2)))  # illegal data address
    words = [(unit << 8) + address + k for k in range(count)]
    return with_crc(bytes((unit, function, 2 * count)) + struct.pack(f">{count}H", *words))


class Line:
    """What the line saw: requests that broke the silence after an answer."""

    def __init__(self) -> None:
        self.gap_violations = 0


def serve(fd: int, baud: int, units: set[int], registers: int, line: Line) -> None:
    gap = inter_frame_delay(baud)
    parent = os.getppid()
    buffer = b""
    first_at = 0.0
    quiet_from = 0.0  # when the last answer's last byte was on the wire, plus t3.5
    turns = 0
    while True:
        turns += 1
        if turns % 100_000 == 0 and os.getppid() != parent:
            return  # the bench is gone
        try:
            data = os.read(fd, 256)
        except BlockingIOError:
            continue
        now = time.perf_counter()
        if not buffer:
            first_at = now
            if now < quiet_from:
                line.gap_violations += 1
        buffer += data
        while len(buffer) >= REQUEST_BYTES:
            request = buffer[:REQUEST_BYTES]
            if not crc_ok(request):
                buffer = buffer[1:]  # a stray byte before a frame: slide to the next one
                continue
            buffer = buffer[REQUEST_BYTES:]
            response = answer(request, units, registers)
            if response is None:
                continue  # not a unit on this line: no answer
            count = struct.unpack(">H", request[4:6])[0]
            table = TABLES[request[1]]
            due = first_at + exchange_time(table, count, baud, gap) - gap
            while time.perf_counter() < due:
                pass
            os.write(fd, response)
            quiet_from = due + gap
            if buffer:  # a request already waiting came during the answer: time it from now
                first_at = time.perf_counter()
                line.gap_violations += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baud", type=int, required=True)
    parser.add_argument("--units", default="1,2,3")
    parser.add_argument("--registers", type=int, default=10)
    args = parser.parse_args()
    line, master_end = os.openpty()
    tty.setraw(line)
    tty.setraw(master_end)
    os.set_blocking(line, False)
    seen = Line()

    def report(*_: object) -> None:
        print(f"gap_violations {seen.gap_violations}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print(os.ttyname(master_end), flush=True)  # the master opens this; we keep it open too
    serve(line, args.baud, {int(u) for u in args.units.split(",")}, args.registers, seen)


if __name__ == "__main__":
    main()
