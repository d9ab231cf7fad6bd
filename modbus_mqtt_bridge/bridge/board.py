"""What `/status`, `/healthz` and the scrape-time gauges report about a running bridge.

`DeviceBoard` sits between the workers and the publisher (it is a worker `Sink` that passes
everything on), so it sees each device's readings and failures as they happen: the last good
read, the latest values, the registers failing right now. The core knows nothing of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .. import __version__
from ..config.model import Config, Device
from ..modbus.health import DeviceHealth
from ..mqtt.buffer import Buffer
from ..mqtt.payloads import iso_ms
from ..observe.health import Heartbeat
from ..observe.metrics import BridgeMetrics
from ..readings import DeviceStatus, ReadFailure, Reading, Sink, Value


@dataclass
class DeviceRecord:
    """One device as /status shows it."""

    online: bool | None = None  # None: not polled yet
    reason: str = ""  # why it went offline
    last_success_ms: int | None = None
    last_error: str = ""
    last_error_ms: int | None = None
    values: dict[str, tuple[Value, int]] = field(default_factory=dict)  # register -> (value, ts)
    errors: dict[str, str] = field(default_factory=dict)  # registers failing on the last read


class DeviceBoard:
    """A Sink in front of the real one: records each device's state, then passes it on."""

    def __init__(self, inner: Sink, metrics: BridgeMetrics | None = None) -> None:
        self.inner = inner
        self.metrics = metrics
        self.devices: dict[str, DeviceRecord] = {}

    def on_tick(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        record = self.devices.setdefault(device.name, DeviceRecord())
        for reading in readings:
            record.values[reading.register.name] = (reading.value, reading.ts_ms)
            record.errors.pop(reading.register.name, None)
        for failure in failures:
            record.errors[failure.register.name] = failure.error
            record.last_error, record.last_error_ms = failure.error, failure.ts_ms
        if readings:
            record.last_success_ms = max(r.ts_ms for r in readings)
            if self.metrics is not None:
                self.metrics.last_success.labels(device.name).set(record.last_success_ms / 1000)
        self.inner.on_tick(device, readings, failures)

    def on_status(self, status: DeviceStatus) -> None:
        record = self.devices.setdefault(status.device.name, DeviceRecord())
        record.online = status.online
        record.reason = "" if status.online else status.reason
        if not status.online and status.reason:
            record.last_error, record.last_error_ms = status.reason, _now_ms()
        self.inner.on_status(status)


class BridgeStatus:
    """The three views of a running bridge the HTTP endpoint serves."""

    def __init__(
        self,
        config: Config,
        board: DeviceBoard,
        *,
        buffer: Buffer,
        broker_connected: Callable[[], bool],
        heartbeat: Heartbeat,
        metrics: BridgeMetrics | None = None,
        health: Mapping[str, Mapping[str, DeviceHealth]] | None = None,
    ) -> None:
        self.config = config
        self.board = board
        self.buffer = buffer
        self._is_connected = broker_connected
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.worker_health = health or {}
        self.started = time.time()

    @property
    def broker_connected(self) -> bool:
        return self._is_connected()

    def health(self) -> tuple[bool, str]:
        if not self.heartbeat.fresh():
            return False, f"main loop stalled: last heartbeat {self.heartbeat.age_s():.1f}s ago"
        if not self.broker_connected:
            return False, f"broker {self.config.mqtt.url} not connected"
        return True, "ok"

    def status(self) -> dict[str, object]:
        return {
            "site": self.config.site,
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 3),
            "healthy": self.health()[0],
            "broker": {"url": self.config.mqtt.url, "connected": self.broker_connected},
            "buffer": {"readings": len(self.buffer), "dropped": self.buffer.dropped},
            "loop": {
                "heartbeat_age_s": round(self.heartbeat.age_s(), 3),
                "lag_s": round(self.heartbeat.lag_s, 4),
            },
            "devices": {device.name: self._device(device) for device in self.config.devices},
        }

    def _device(self, device: Device) -> dict[str, object]:
        record = self.board.devices.get(device.name, DeviceRecord())
        health = self.worker_health.get(device.connection, {}).get(device.name)
        return {
            "id": device.id,
            "connection": device.connection,
            "unit": device.unit_id,
            "online": record.online,
            "offline_reason": record.reason or None,
            "failures_in_a_row": health.failures if health else 0,
            "last_success": _iso(record.last_success_ms),
            "last_error": record.last_error or None,
            "last_error_at": _iso(record.last_error_ms),
            "values": {
                name: {"value": value, "ts": iso_ms(ts)}
                for name, (value, ts) in record.values.items()
            },
            "errors": dict(record.errors),
        }

    def refresh_metrics(self) -> None:
        """Scrape-time gauges: values owned by other parts, read just before each scrape."""
        if self.metrics is None:
            return
        self.metrics.buffer_depth.set(len(self.buffer))
        self.metrics.loop_lag.set(self.heartbeat.lag_s)
        self.metrics.broker_connected.set(1 if self.broker_connected else 0)


def _iso(ts_ms: int | None) -> str | None:
    return iso_ms(ts_ms) if ts_ms is not None else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
