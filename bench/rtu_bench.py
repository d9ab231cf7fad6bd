"""RTU bus benchmark: three slaves on one pty line, polled back to back by one worker.

The slaves are the project's simulator in its own process (`simulate --serial ...
--emulate-line`), so each answer takes the wire time its baud rate implies (a pty itself
has none). The worker polls with an interval far shorter than a cycle, so the bus never
idles; the achieved cycle time is compared with wiretime's estimate of one full cycle.

    .venv/bin/python bench/rtu_bench.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modbus_mqtt_bridge.config.load import load_config
from modbus_mqtt_bridge.config.model import Device
from modbus_mqtt_bridge.modbus.wiretime import estimate_bus
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


def run_one(baud: int, seconds: float) -> tuple[float, float, int]:
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
            return asyncio.run(_poll(config, seconds))
        finally:
            sim.terminate()
            sim.wait(10)
            pty.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per baud")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    print("| baud | wire-time limit per cycle | achieved cycle | over the limit | failures |")
    print("|---:|---:|---:|---:|---:|")
    results = []
    for baud in (9600, 115200):
        achieved, limit, failures = run_one(baud, args.seconds)
        over = achieved / limit - 1
        print(
            f"| {baud} | {limit * 1000:.1f} ms | {achieved * 1000:.1f} ms | "
            f"{over:+.1%} | {failures} |"
        )
        results.append({"baud": baud, "cycle_s": achieved, "limit_s": limit, "over": over})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
