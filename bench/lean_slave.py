"""A lean Modbus TCP slave for the ceiling (bench/ceiling.py): fixed float32 answers, cheap.

    .venv/bin/python bench/lean_slave.py --ports 5020,5021 [--registers 10000]

The project's simulator (pymodbus's server, values refreshed every second) costs about
0.6 ms of CPU per request. On a 2-core machine the ceiling keeps the bridge alone on one
core and everything else on the other; at 30,000 values/s the simulator then took a third
of that other core, and the broker and the counter starved, so the figure measured the rig.
This slave answers read holding / input registers (functions 3 and 4) of any unit id from
one table of float32 values (big-endian words, the configs' default) in a few microseconds.
The bridge does the same work as against the simulator: same requests, same decoding, the
same payload sizes (values around 230 with 7-8 significant digits, one per register pair).
Anything else gets exception 1 (illegal function); a read outside the table exception 2.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import struct
import sys

HEADER = struct.Struct(">HHHB")  # transaction, protocol, length, unit
READS = (3, 4)


def value_table(registers: int) -> bytes:
    """registers // 2 float32 values as the simulator's voltage-like waves, big-endian."""
    values = [230.0 + 10.0 * math.sin(k * 0.731) for k in range(registers // 2)]
    return struct.pack(f">{len(values)}f", *values)


class Slave(asyncio.Protocol):
    def __init__(self, table: bytes) -> None:
        self.table = table
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        out = []
        while len(buf) >= 7:
            tid, _proto, length, unit = HEADER.unpack_from(buf)
            end = 6 + length
            if len(buf) < end:
                break
            pdu = buf[7:end]
            buf = buf[end:]
            out.append(self.answer(tid, unit, pdu))
        self.buffer = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def answer(self, tid: int, unit: int, pdu: bytes) -> bytes:
        fc = pdu[0] if pdu else 0
        if fc not in READS or len(pdu) != 5:
            return self.frame(tid, unit, bytes((fc | 0x80, 1)))
        address, count = struct.unpack_from(">HH", pdu, 1)
        start, stop = 2 * address, 2 * (address + count)
        if not 1 <= count <= 125 or stop > len(self.table):
            return self.frame(tid, unit, bytes((fc | 0x80, 2)))
        return self.frame(tid, unit, bytes((fc, 2 * count)) + self.table[start:stop])

    @staticmethod
    def frame(tid: int, unit: int, pdu: bytes) -> bytes:
        return HEADER.pack(tid, 0, len(pdu) + 1, unit) + pdu


async def serve(ports: list[int], registers: int) -> None:
    table = value_table(registers)
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(lambda: Slave(table), "127.0.0.1", port) for port in ports]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"lean slave on {len(ports)} ports, {registers} registers", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--ports", required=True, help="comma-separated TCP ports on 127.0.0.1")
    p.add_argument("--registers", type=int, default=10_000, help="holding registers served")
    args = p.parse_args()
    try:
        ports = [int(x) for x in args.ports.split(",") if x]
    except ValueError:
        print(f"error: --ports: not a list of port numbers: {args.ports!r}", file=sys.stderr)
        return 2
    if not 1 <= args.registers <= 65536:
        print("error: --registers must be 1..65536", file=sys.stderr)
        return 2
    asyncio.run(serve(ports, args.registers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
