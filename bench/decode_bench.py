"""Device-payload hot path: CPU per value from a Modbus response to the device JSON (issue 16).

    .venv/bin/python bench/decode_bench.py [--devices 10] [--registers 2000] [--ticks 5]
                                           [--repeat 3] [--json OUT]

In one process, on the same register blocks (mixed uint16 / int16 / uint32 / float32
holding registers, some scaled, planned by `build_plan` from a generated config):

- **bridge**: the worker's `_decode_into` (the whole response through the request's
  precompiled `codec.BlockCodec`, one timestamp per request, `Reading`s), then what the
  publisher does for `device_payload` (latest value per register, `payloads.device_json`).
- **bridge, value by value**: the same with the request's block codec removed, i.e. one
  `codec.decode` per value (the path before the block codec), for the same-run before/after.
- **floor**: a bare loop, the Python floor of the issue: one `struct` unpack per block, the
  same float32 shortest-decimal and scale rules, a dict, `json` — checked to give the same
  JSON, byte for byte, on every tick.

CPU is `time.process_time()` around whole ticks, with the garbage collector set as `run`
sets it (frozen start-up objects, gen-0 threshold 50,000); each figure is the median of `--repeat`.
Target: bridge ≤ 2 x the floor.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import random
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modbus_mqtt_bridge import codec  # noqa: E402
from modbus_mqtt_bridge.config.load import load_config_text  # noqa: E402
from modbus_mqtt_bridge.modbus.worker import _decode_into  # noqa: E402
from modbus_mqtt_bridge.mqtt import payloads  # noqa: E402
from modbus_mqtt_bridge.plan import ReadRequest, build_plan  # noqa: E402
from modbus_mqtt_bridge.readings import ReadFailure, Reading  # noqa: E402

TARGET_RATIO = 2.0
TYPES = ("uint16", "int16", "uint32", "float32")
WIDTH = {"uint16": 1, "int16": 1, "uint32": 2, "float32": 2}


def config_yaml(devices: int, registers: int) -> str:
    lines = ["site: bench", "connections:"]
    lines += [f"  - {{name: c{i}, host: 127.0.0.1, port: {15020 + i}}}" for i in range(devices)]
    lines.append("devices:")
    for i in range(devices):
        lines += [f"  - {{name: d{i}, id: {i + 1}, connection: c{i}, interval: 1s, registers: ["]
        address = 40001
        for j in range(registers):
            kind = TYPES[j % len(TYPES)]
            scale = ", scale: 0.1" if j % 8 == 1 else ""
            lines.append(f"      {{name: r{j}, address: {address}, type: {kind}{scale}}},")
            address += WIDTH[kind]
        lines.append("    ]}")
    return "\n".join(lines) + "\n"


def blocks_for(requests: list[ReadRequest], rng: random.Random) -> list[list[int]]:
    """Plausible responses: every value encoded from a random number of its type."""
    out = []
    for request in requests:
        block = [0] * request.count
        for planned in request.values:
            reg = planned.register
            number: float = rng.uniform(-3000, 3000) if reg.type == "float32" else 0
            if reg.type != "float32":
                number = rng.randrange(0, 30000) * (reg.scale if reg.scale != 1 else 1)
            words = codec.encode(round(number, 1) if reg.scale != 1 else number, reg)
            block[planned.offset : planned.offset + len(words)] = words
        out.append(block)
    return out


def bridge_tick(device_requests: list[tuple[list[ReadRequest], list[list[int]]]]) -> list[str]:
    out = []
    latest: dict[str, dict[str, Any]] = {}
    for requests, blocks in device_requests:
        readings: list[Reading] = []
        failures: list[ReadFailure] = []
        for request, block in zip(requests, blocks, strict=True):
            _decode_into(request, block, readings, failures)
        device = requests[0].device
        values = latest.setdefault(device.name, {})
        for reading in readings:  # as Pipeline.on_readings does with device_payload
            values[reading.register.name] = reading.value
        out.append(payloads.device_json(max(r.ts_ms for r in readings), values))
    return out


_F32 = struct.Struct(">f")


def _shortest_f32(raw: float, pack: Any = _F32) -> float:
    for spec in (".6g", ".7g", ".8g"):
        candidate = float(format(raw, spec))
        if pack.unpack(pack.pack(candidate))[0] == raw:
            return candidate
    return float(format(raw, ".9g"))


def floor_prepare(requests: list[ReadRequest]) -> list[tuple[Any, Any, list[Any]]]:
    """Per request: the block struct, the values struct, per value (name, float32?, scale)."""
    prepared = []
    for request in requests:
        fmt = ">"
        position = 0
        steps = []
        for planned in request.values:
            reg = planned.register
            fmt += f"{2 * (planned.offset - position)}x" if planned.offset > position else ""
            fmt += {"uint16": "H", "int16": "h", "uint32": "I", "float32": "f"}[reg.type]
            position = planned.offset + reg.count
            steps.append((reg.name, reg.type == "float32", reg.scale))
        fmt += f"{2 * (request.count - position)}x"
        prepared.append((struct.Struct(f">{request.count}H"), struct.Struct(fmt), steps))
    return prepared


def floor_tick(device_floor: list[tuple[list[Any], list[list[int]]]]) -> list[str]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    out = []
    for prepared, blocks in device_floor:
        body: dict[str, Any] = {"ts": payloads.iso_ms(time.time_ns() // 1_000_000)}
        for (words, values, steps), block in zip(prepared, blocks, strict=True):
            for raw, (name, is_f32, scale) in zip(
                values.unpack(words.pack(*block)), steps, strict=True
            ):
                value = _shortest_f32(raw) if is_f32 else raw
                if scale != 1:
                    value = (
                        round(value * scale, 1)
                        if not is_f32
                        else float(format(value * scale, ".15g"))
                    )
                body[name] = value
        out.append(dumps(body))
    return out


def _cpu(fn: Any, arg: Any, ticks: int) -> float:
    t0 = time.process_time()
    for _ in range(ticks):
        fn(arg)
    return time.process_time() - t0


def without_ts(payload: str) -> str:
    return payload.split(",", 1)[1]  # the ts differs by the clock only


def measure(devices: int, registers: int, ticks: int, repeat: int) -> dict[str, Any]:
    plan = build_plan(load_config_text(config_yaml(devices, registers), {}))
    rng = random.Random(16)
    per_device: dict[str, list[ReadRequest]] = {}
    for request in plan.requests:
        per_device.setdefault(request.device.name, []).append(request)
    new = [(reqs, blocks_for(reqs, rng)) for reqs in per_device.values()]
    old = []
    for reqs, blocks in new:
        stripped = []
        for request in reqs:
            clone = copy.copy(request)
            object.__setattr__(clone, "block", None)
            stripped.append(clone)
        old.append((stripped, blocks))
    floor = [(floor_prepare(reqs), blocks) for reqs, blocks in new]
    same = [without_ts(p) for p in bridge_tick(new)]
    assert same == [without_ts(p) for p in bridge_tick(old)], "block codec changed a payload"
    assert same == [without_ts(p) for p in floor_tick(floor)], "floor JSON differs"
    values = plan.value_count * ticks
    gc.collect()  # the collector as `run` sets it after start-up (bridge/service.py)
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    runs: dict[str, list[float]] = {"bridge": [], "value_by_value": [], "floor": []}
    for _ in range(repeat):  # interleaved: the three see the same machine
        runs["bridge"].append(_cpu(bridge_tick, new, ticks) / values * 1e6)
        runs["value_by_value"].append(_cpu(bridge_tick, old, ticks) / values * 1e6)
        runs["floor"].append(_cpu(floor_tick, floor, ticks) / values * 1e6)
    result: dict[str, Any] = {k: statistics.median(v) for k, v in runs.items()}
    result["runs_us_per_value"] = {k: [round(x, 2) for x in v] for k, v in runs.items()}
    result["values_per_tick"] = plan.value_count
    result["ratio"] = result["bridge"] / result["floor"]
    result["ratio_value_by_value"] = result["value_by_value"] / result["floor"]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--registers", type=int, default=2000)
    p.add_argument("--ticks", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    r = measure(args.devices, args.registers, args.ticks, args.repeat)
    verdict = "met" if r["ratio"] <= TARGET_RATIO else "not met"
    print(
        f"device payload, {r['values_per_tick']:,} values/tick: bridge {r['bridge']:.2f} µs/value, "
        f"value by value {r['value_by_value']:.2f}, floor {r['floor']:.2f}; "
        f"ratio {r['ratio']:.2f} x (value by value {r['ratio_value_by_value']:.2f} x); "
        f"target ≤ {TARGET_RATIO:.0f} x: {verdict}"
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
