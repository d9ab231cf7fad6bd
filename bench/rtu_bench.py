"""RTU bus benchmark: three slaves on one pty line, polled back to back by one worker.

The line (`--line`) makes each answer take the wire time its baud rate implies (a pty
itself has none):
- `lean` (the default, the target's figure): bench/rtu_slave.py, a pty pair of its own that
  spins for requests and writes each answer when the wire would have delivered it, with no
  relay in between;
- `simulator`: the project's simulator in its own process (`simulate --serial ...
  --emulate-line`) behind a socat pty pair, whose relay and wake-ups add about 0.8 ms per
  exchange (docs/benchmarks.md).
The worker polls with an interval far shorter than a cycle, so the bus never idles; the
achieved cycle time is compared with wiretime's estimate of one full cycle.

In the same run, against the same line, a bare master (`_bare_cycle`: os.write, select, the
t3.5 silence slept from the answer's arrival, no pymodbus, no asyncio) shows what the rig
itself allows: the line's own latency per exchange (its turnaround beyond the emulated wire
time) is in both figures, so the bridge's cost is the difference between the two.

    .venv/bin/python bench/rtu_bench.py [--seconds 6] [--line lean|simulator] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modbus_mqtt_bridge.config.load import load_config
from modbus_mqtt_bridge.config.model import Device
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.modbus.frames import with_crc
from modbus_mqtt_bridge.modbus.wiretime import estimate_bus, exchange_time, inter_frame_delay
from modbus_mqtt_bridge.modbus.worker import Worker
from modbus_mqtt_bridge.plan import build_plan
from modbus_mqtt_bridge.readings import DeviceStatus, ReadFailure, Reading
from tests.support.ports import wait_until
from tests.support.pty import PtyPair

ROOT = Path(__file__).resolve().parent.parent
UNITS = (1, 2, 3)
REGISTERS = 10  # 40001..40010 per slave: one read each


def _yaml(port: Path, baud: int) -> str:
    devices = "\n".join(
        f"  - {{name: m{u}, unit: {u}, interval: 5ms, registers: ["
        f"{{name: a, address: 40001, type: uint16}}, "
        f"{{name: b, address: {40000 + REGISTERS}, type: uint16}}]}}"
        for u in UNITS
    )
    return (
        "site: bench\nlogging: {level: INFO}\nconnections:\n"
        f"  - {{name: bus, type: rtu, port: {port}, baudrate: {baud}, timeout: 1}}\n"
        f"devices:\n{devices}\n"
    )


class Counter:
    """A worker sink that counts completed device ticks and failures."""

    def __init__(self) -> None:
        self.ticks = 0
        self.failures = 0

    def on_readings(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        self.failures += len(failures)

    def on_tick_end(self, device: Device) -> None:
        self.ticks += 1

    def on_status(self, status: DeviceStatus) -> None:
        return


async def _poll(config_path: Path, seconds: float) -> tuple[float, float, int]:
    """(achieved cycle s, estimated cycle s, failures) over `seconds` of polling."""
    config = load_config(config_path)
    requests = build_plan(config).for_connection("bus")
    estimate = estimate_bus(config.connections[0], requests)
    assert estimate is not None
    sink = Counter()
    worker = Worker(config.connections[0], requests, sink)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(1.0)  # warm-up: connect, first cycles
    start_ticks, start = sink.ticks, time.perf_counter()
    await asyncio.sleep(seconds)
    cycles = (sink.ticks - start_ticks) / len(UNITS)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return elapsed / cycles, estimate.cycle_s, sink.failures


def _bare_cycle(port: Path, baud: int, seconds: float) -> tuple[float, float]:
    """(cycle s, the simulator's median turnaround beyond the emulated wire time s) of a
    minimal master polling the same three reads back to back."""
    fd = os.open(str(port), os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        gap = inter_frame_delay(baud)
        wire = exchange_time(Table.HOLDING, REGISTERS, baud, gap) - gap  # the sim's share
        requests = [with_crc(bytes([u, 3, 0, 0, 0, REGISTERS])) for u in UNITS]
        answer_bytes = 5 + 2 * REGISTERS
        late: list[float] = []
        warm_until = time.perf_counter() + 1.0  # as for the worker: a second of warm-up
        start, cycles = 0.0, 0
        while (now := time.perf_counter()) < warm_until + seconds:
            if not start and now >= warm_until:
                start, cycles = now, 0
                late.clear()
            for request in requests:
                sent = time.perf_counter()
                os.write(fd, request)
                got = b""
                while len(got) < answer_bytes:
                    if not select.select([fd], [], [], 1.0)[0]:
                        raise RuntimeError("the simulator did not answer the bare master")
                    got += os.read(fd, 256)
                answered = time.perf_counter()
                late.append(answered - sent - wire)
                time.sleep(max(0.0, answered + gap - time.perf_counter()))
            cycles += 1
        return (time.perf_counter() - start) / cycles, statistics.median(late)
    finally:
        os.close(fd)


Run = tuple[float, float, int, float, float, int]  # cycle, limit, failures, bare, late, gaps


def run_one(baud: int, seconds: float, line: str = "lean") -> Run:
    """(achieved cycle s, limit s, failures, bare master's cycle s, the line's median delay
    beyond the wire s, requests that broke the t3.5 silence: lean line only, else 0)."""
    if line == "lean":
        return _run_lean(baud, seconds)
    with tempfile.TemporaryDirectory(prefix="rtu-bench-") as tmp:
        pty = PtyPair(Path(tmp) / "line")
        pty.dir.mkdir()
        pty.plug()
        config = Path(tmp) / "bench.yaml"
        config.write_text(_yaml(pty.a, baud))
        log = Path(tmp) / "sim.log"
        simulate = ["simulate", "-c", str(config), "--serial", f"bus={pty.b}", "--emulate-line"]
        sim = subprocess.Popen(
            [sys.executable, "-m", "modbus_mqtt_bridge", *simulate, "--refresh", "3600"],
            stderr=log.open("wb"),
            cwd=ROOT,  # `-m modbus_mqtt_bridge` from the checkout, installed or not
        )
        try:
            wait_until(lambda: "simulating bus" in log.read_text(), 20, "the simulator")
            return (*_both_masters(config, pty.a, baud, seconds), 0)
        finally:
            sim.terminate()
            sim.wait(10)
            pty.close()


def _both_masters(
    config: Path, port: Path, baud: int, seconds: float
) -> tuple[float, float, int, float, float]:
    """The bridge's worker, then the bare master, on the same line: (cycle, limit, failures,
    bare master's cycle, the line's median delay beyond the wire)."""
    achieved, limit, failures = asyncio.run(_poll(config, seconds))
    time.sleep(0.01)  # the line's silence between the two masters (t3.5 and more)
    bare, turnaround = _bare_cycle(port, baud, seconds)
    return achieved, limit, failures, bare, turnaround


def _run_lean(baud: int, seconds: float) -> Run:
    units = ",".join(str(u) for u in UNITS)
    argv = [sys.executable, str(ROOT / "bench" / "rtu_slave.py"), "--baud", str(baud)]
    argv += ["--units", units, "--registers", str(REGISTERS)]
    slave = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert slave.stdout is not None
        if not select.select([slave.stdout], [], [], 20)[0]:
            raise RuntimeError("bench/rtu_slave.py did not print its line's path")
        path = slave.stdout.readline().decode().strip()
        if not path:
            raise RuntimeError(f"bench/rtu_slave.py exited ({slave.wait(10)}) without a line")
        with tempfile.TemporaryDirectory(prefix="rtu-bench-") as tmp:
            config = Path(tmp) / "bench.yaml"
            config.write_text(_yaml(Path(path), baud))
            measured = _both_masters(config, Path(path), baud, seconds)
        slave.terminate()
        said = slave.stdout.read().decode().split()  # "gap_violations N" on SIGTERM
        gaps = int(said[1]) if said[:1] == ["gap_violations"] else -1
        return (*measured, gaps)
    finally:
        slave.terminate()
        slave.wait(10)


def _stopped(_signum: int, _frame: object) -> None:
    raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per baud")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--line", choices=("lean", "simulator"), default="lean", help="the emulated line"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per baud rate: medians")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stopped)  # so the finally blocks stop the line's slave
    print(
        "| baud | wire-time limit per cycle | achieved cycle | over the limit | failures "
        "| bare master's cycle (over) | line's turnaround beyond the wire |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for baud in (9600, 115200):
        runs = [run_one(baud, args.seconds, args.line) for _ in range(args.repeat)]
        achieved, limit, _, bare, turnaround, _ = (
            statistics.median(x) for x in zip(*runs, strict=True)
        )
        failures = sum(run[2] for run in runs)
        gaps = -1 if any(run[5] < 0 for run in runs) else sum(run[5] for run in runs)
        over = achieved / limit - 1
        print(
            f"| {baud} | {limit * 1000:.1f} ms | {achieved * 1000:.1f} ms | "
            f"{over:+.1%} | {failures} | {bare * 1000:.1f} ms ({bare / limit - 1:+.1%}) | "
            f"{turnaround * 1000:.2f} ms |"
        )
        results.append(
            {
                "baud": baud,
                "cycle_s": achieved,
                "limit_s": limit,
                "over": over,
                "bare_cycle_s": bare,
                "line": args.line,
                "line_turnaround_s": turnaround,
                "runs": args.repeat,
                "failures": failures,
                "gap_violations": gaps,  # requests that broke the line's silence (-1: unknown)
            }
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
