"""Commissioning: `read` one register of any TCP/RTU target, decoded every plausible way,
and `write` one register of a configured device through the same checks as MQTT commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Literal

from ..config.addressing import Address
from ..config.model import Config, Connection
from ..config.types import Table
from ..observe.logs import setup_logging

EXIT_OK, EXIT_USAGE = 0, 2
MAX_REGISTERS, MAX_BITS = 125, 2000  # the most one read request may ask for (Modbus spec)


def cmd_write(args: argparse.Namespace, load: Callable[[argparse.Namespace], Config]) -> int:
    from ..writes.handler import write_once  # noqa: PLC0415

    config = load(args)
    code, result = asyncio.run(write_once(config, args.device, args.register, args.value))
    print(result)
    return code


def write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="device name from the config")
    p.add_argument("register", help="writable register of that device")
    p.add_argument("value", help="value as on MQTT: 21.5, true/false, ON/OFF, 1/0, text")


def cmd_read(args: argparse.Namespace) -> int:
    from ..config.addressing import parse_address  # noqa: PLC0415

    setup_logging(level=args.log_level or "WARNING")
    try:
        location = parse_address(args.address, args.table)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    limit = MAX_BITS if location.table.is_bits else MAX_REGISTERS
    if args.count > limit:
        what = "bits" if location.table.is_bits else "registers"
        print(
            f"error: --count {args.count}: one Modbus read returns at most {limit} {what}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    conn = _read_connection(args)
    words = asyncio.run(_read_once(conn, location.table, location.address, args))
    print(_format_read(conn, args.unit, location, words))
    return EXIT_OK


def _read_connection(args: argparse.Namespace) -> Connection:
    if args.serial:
        return Connection(
            "modbus",
            "rtu",
            port=args.serial,
            timeout_s=args.timeout,
            baudrate=args.baudrate,
            parity=args.parity,
            stopbits=args.stopbits,
            bytesize=args.bytesize,
        )
    kind: Literal["tcp", "rtu-over-tcp"] = "rtu-over-tcp" if args.rtu_over_tcp else "tcp"
    return Connection("modbus", kind, host=args.host, port=args.port, timeout_s=args.timeout)


async def _read_once(
    conn: Connection, table: Table, address: int, args: argparse.Namespace
) -> list[int]:
    from ..modbus.port import ModbusPort  # noqa: PLC0415

    port = ModbusPort(conn)
    await port.connect()
    try:
        return await port.read(table, address, args.count, args.unit)
    finally:
        port.close()


def _format_read(conn: Connection, unit: int, location: Address, words: list[int]) -> str:
    """The raw answer, then one line per plausible decoding (type, byte and word order)."""
    from ..codec import interpretations  # noqa: PLC0415
    from ..config.types import TYPES  # noqa: PLC0415
    from ..modbus.port import describe  # noqa: PLC0415

    where = f"{location.table.value} {location.address}"
    if location.written != location.address:
        where += f" ({location.written})"
    lines = [f"{describe(conn)} unit {unit}: {where}, {len(words)} value(s)"]
    if location.table.is_bits:
        lines.append("bits: " + " ".join(str(b) for b in words))
        return "\n".join(lines)
    lines.append("raw:  " + " ".join(f"0x{w:04x}" for w in words))
    lines.append("      " + " ".join(f"{w:>6}" for w in words))
    lines.append(f"{'type':<8} {'byte_order':<10} {'word_order':<10} value")
    for type_name, byte_order, word_order, value in interpretations(words):
        single = type_name == "string" or TYPES[type_name].registers == 1
        lines.append(
            f"{type_name:<8} {byte_order:<10} {'-' if single else word_order:<10} {value!r}"
        )
    return "\n".join(lines)


def read_options(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--host", help="Modbus TCP device or gateway")
    target.add_argument("--serial", metavar="PORT", help="serial port, e.g. /dev/ttyUSB0 or COM3")
    p.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    p.add_argument("--rtu-over-tcp", action="store_true", help="RTU frames through a TCP gateway")
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--parity", choices=("N", "E", "O"), default="N")
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    p.add_argument("--bytesize", type=int, choices=(5, 6, 7, 8), default=8)
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    p.add_argument("--unit", type=int, default=1, help="Modbus unit / slave id (default 1)")
    p.add_argument(
        "--address",
        required=True,
        help="Modicon (40001) or, with --table, the 0-based address (decimal or 0x hex)",
    )
    p.add_argument("--table", choices=("holding", "input", "coil", "discrete"))
    p.add_argument(
        "--count",
        type=_positive,
        default=4,
        metavar="N",
        help=f"registers (at most {MAX_REGISTERS}) or bits (at most {MAX_BITS}) to read "
        "(default 4: enough for every 64-bit type)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
