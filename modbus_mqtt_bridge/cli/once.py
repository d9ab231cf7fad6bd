"""`once`: poll every register one time, print a table or JSON lines, optionally publish.

This is the old `poller.py` cycle (`--dry-run` is its `--test`). Exit 1 if a device failed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from ..config.model import Config, Device
from ..errors import MqttError
from ..modbus.worker import Worker
from ..mqtt import payloads, topics
from ..mqtt.port import MqttPort
from ..plan import build_plan
from ..readings import DeviceStatus, ReadFailure, Reading

PUBLISH_TIMEOUT_S = 10.0


class Collector:
    """A worker sink that keeps everything for printing."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.failures: list[ReadFailure] = []
        self.offline: dict[str, str] = {}

    def on_readings(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        self.readings.extend(readings)
        self.failures.extend(failures)

    def on_tick_end(self, device: Device) -> None:
        return

    def on_status(self, status: DeviceStatus) -> None:
        if not status.online:
            self.offline[status.device.name] = status.reason


async def run_once(config: Config, *, dry_run: bool, as_json: bool) -> int:
    plan = build_plan(config)
    sink = Collector()
    workers = [
        Worker(conn, plan.for_connection(conn.name), sink)
        for conn in config.connections
        if plan.for_connection(conn.name)
    ]
    try:
        await asyncio.gather(*(w.poll_once() for w in workers))
    finally:
        for w in workers:
            w.port.close()
    if as_json:
        for reading in sink.readings:
            print(payloads.reading_json(reading))
    else:
        print(format_table(sink))
    if not dry_run:
        await _publish(config, sink.readings)
    failed = bool(sink.offline) or bool(sink.failures)
    return 1 if failed else 0


def format_table(sink: Collector) -> str:
    rows = [("device", "register", "value", "unit", "read at (UTC)")]
    for r in sink.readings:
        value = f"{r.value:.6g}" if isinstance(r.value, float) else str(r.value)
        rows.append(
            (
                r.device.name,
                r.register.name,
                value,
                r.register.engineering_unit or "",
                payloads.iso_ms(r.ts_ms),
            )
        )
    rows.extend((f.device.name, f.register.name, "ERROR", "", f.error) for f in sink.failures)
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, reason in sink.offline.items():
        lines.append(f"device {name} failed: {reason}")
    return "\n".join(lines)


async def _publish(config: Config, readings: Sequence[Reading]) -> None:
    port = MqttPort(config.mqtt, f"{config.mqtt_client_id}-once")
    await port.connect()
    try:
        for r in readings:
            port.publish(
                topics.reading(config.site, r.device.name, r.register.name),
                payloads.reading_json(r),
                config.mqtt.qos,
                config.mqtt.retain,
            )
        if not await port.wait_acked(PUBLISH_TIMEOUT_S):
            raise MqttError(f"{port.pending_acks} readings were not acknowledged by the broker")
    finally:
        await port.disconnect()
    print(f"published {len(readings)} readings", file=sys.stderr)
