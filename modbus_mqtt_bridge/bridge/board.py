"""What `/status`, `/healthz` and the scrape-time gauges report about a running bridge.

`DeviceBoard` sits between the workers and the publisher (it is a worker `Sink` that passes
everything on), so it sees each device's readings and failures as they happen, one request
at a time: the last good read, the latest values, the registers failing right now. The core
knows nothing of it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .. import __version__
from ..config.model import Config, Device
from ..modbus.health import DeviceHealth
from ..modbus.wiretime import BusEstimate
from ..mqtt.buffer import Buffer
from ..mqtt.payloads import iso_ms
from ..observe.health import Heartbeat
from ..observe.metrics import BridgeMetrics
from ..readings import DeviceStatus, ReadFailure, Reading, Sink, Value
from .history import History, Stamps, go_alone, whole_group


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
    since_ms: int | None = None  # when it last went online or offline
    history: dict[str, History] = field(default_factory=dict)  # register -> its last readings


class DeviceBoard:
    """A Sink in front of the real one: records each device's state, then passes it on."""

    def __init__(
        self, inner: Sink, metrics: BridgeMetrics | None = None, history: int = 120
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.history_size = history
        self.devices: dict[str, DeviceRecord] = {}
        self.readings_seen = 0  # every reading that passed, for the page's readings/s

    def on_readings(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        record = self.devices.get(device.name)
        if record is None:
            record = self.devices[device.name] = DeviceRecord()
        # the hot path (once per value): attributes hoisted, and the errors dict only
        # touched when some register of the device failed before
        values, errors, histories = record.values, record.errors, record.history
        stamps = self._shared_stamps(histories, readings)
        for reading in readings:
            name, value, ts_ms = reading.register.name, reading.value, reading.ts_ms
            values[name] = (value, ts_ms)
            if errors:
                errors.pop(name, None)
            if stamps is not None:  # this read's rings share it: pushed once, below
                histories[name].put(value)
                continue
            history = histories.get(name)
            if history is None:
                history = histories[name] = History(self.history_size)
            elif history.stamps.members > 1:
                go_alone(history.stamps, histories)
            history.add(ts_ms, value)
        if stamps is not None:
            stamps.push(readings[0].ts_ms)
        self.readings_seen += len(readings)
        for failure in failures:
            record.errors[failure.register.name] = failure.error
            record.last_error, record.last_error_ms = failure.error, failure.ts_ms
        if readings:
            record.last_success_ms = max(r.ts_ms for r in readings)
            if self.metrics is not None:
                self.metrics.last_success.labels(device.name).set(record.last_success_ms / 1000)
        self.inner.on_readings(device, readings, failures)

    def _shared_stamps(
        self, histories: dict[str, History], readings: Sequence[Reading]
    ) -> Stamps | None:
        """The timestamps all of these readings' rings share, when they are exactly one
        group's and one read's (the next timestamp to push is theirs); None: ring by ring.

        Registers first seen together (one request, every value read, all at one time,
        none a string) get rings that share their timestamps. Any other mix, e.g. a register
        of the group failing or a write's read-back alone, leaves that group's rings each
        with a copy of the timestamps from then on, so every ring stays exactly as one of
        its own would be."""
        if len(readings) < 2:
            return None
        ts_ms = readings[0].ts_ms
        first = histories.get(readings[0].register.name)
        if first is None:
            return self._new_group(histories, readings, ts_ms)
        stamps = first.stamps
        return stamps if whole_group(stamps, histories, readings, ts_ms) else None

    def _new_group(
        self, histories: dict[str, History], readings: Sequence[Reading], ts_ms: int
    ) -> Stamps | None:
        names = {reading.register.name for reading in readings}
        if len(names) != len(readings) or any(name in histories for name in names):
            return None
        for reading in readings:
            if reading.ts_ms != ts_ms or isinstance(reading.value, str):
                return None
        stamps = Stamps(self.history_size, members=len(readings))
        for name in names:
            histories[name] = History(self.history_size, stamps)
        return stamps

    def on_tick_end(self, device: Device) -> None:
        self.inner.on_tick_end(device)

    def on_status(self, status: DeviceStatus) -> None:
        record = self.devices.setdefault(status.device.name, DeviceRecord())
        if record.online is not status.online:
            record.since_ms = _now_ms()
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
        links: Mapping[str, Link] | None = None,
    ) -> None:
        self.config = config
        self.board = board
        self.buffer = buffer
        self._is_connected = broker_connected
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.worker_health = health or {}
        self.links = links or {}
        self.started = time.time()
        self._rate = _Rate()
        self._rate.per_s(board.readings_seen)  # counted from the start
        self._devices = {device.name: device for device in config.devices}

    @property
    def broker_connected(self) -> bool:
        return self._is_connected()

    def health(self) -> tuple[bool, str]:
        if not self.heartbeat.fresh():
            return False, f"main loop stalled: last heartbeat {self.heartbeat.age_s():.1f}s ago"
        if not self.broker_connected:
            return False, f"broker {self.config.mqtt.url} not connected"
        return True, "ok"

    def _identity(self, uptime_digits: int) -> dict[str, object]:
        """What /status and the page's header both start with."""
        return {
            "site": self.config.site,
            "version": __version__,
            "uptime_s": round(time.time() - self.started, uptime_digits),
        }

    def _transport(self) -> dict[str, object]:
        return {
            "broker": {"url": self.config.mqtt.url, "connected": self.broker_connected},
            "buffer": {"readings": len(self.buffer), "dropped": self.buffer.dropped},
        }

    def _seen(self, device: Device) -> tuple[DeviceRecord, DeviceHealth | None]:
        """The board's record of a device and its worker's health (None: not polled here)."""
        record = self.board.devices.get(device.name, DeviceRecord())
        return record, self.worker_health.get(device.connection, {}).get(device.name)

    def status(self) -> dict[str, object]:
        return {
            **self._identity(3),
            "healthy": self.health()[0],
            **self._transport(),
            "loop": {
                "heartbeat_age_s": round(self.heartbeat.age_s(), 3),
                "lag_s": round(self.heartbeat.lag_s, 4),
            },
            "devices": {device.name: self._device(device) for device in self.config.devices},
        }

    def _device(self, device: Device) -> dict[str, object]:
        record, health = self._seen(device)
        return {
            "id": device.id,
            "connection": device.connection,
            "unit": device.unit_id,
            "online": record.online,
            "offline_reason": record.reason or None,
            "failures_in_a_row": health.failures if health else 0,
            "last_success": _iso(record.last_success_ms),
            **_last_error(record, health),
            "values": {
                name: {"value": value, "ts": iso_ms(ts)}
                for name, (value, ts) in record.values.items()
            },
            "errors": dict(record.errors),
        }

    # -- the page's JSON API (SPEC 6) ------------------------------------------------

    def api_bridge(self) -> dict[str, object]:
        """The bridge and its connections: the page's header."""
        return {
            **self._identity(1),
            **self._transport(),
            "readings_per_s": round(self._rate.per_s(self.board.readings_seen), 2),
            "history": self.board.history_size,
            "connections": [self._connection(conn.name) for conn in self.config.connections],
        }

    def api_devices(self) -> dict[str, object]:
        """GET /api/devices: every device's state, since when, last read, last error."""
        return {
            "bridge": self.api_bridge(),
            "devices": [self._device_state(device) for device in self.config.devices],
        }

    def api_device(self, name: str) -> dict[str, object] | None:
        """GET /api/devices/{name}: its state and its registers' latest readings."""
        device = self._devices.get(name)
        if device is None:
            return None
        record = self.board.devices.get(name, DeviceRecord())
        now_ms = _now_ms()
        registers = []
        for register in device.registers:
            value, ts = record.values.get(register.name, (None, None))
            registers.append(
                {
                    "name": register.name,
                    "value": value,
                    "unit": register.engineering_unit,
                    "ts": _iso(ts),
                    "quality": _quality(register.name, register.interval_s, ts, record, now_ms),
                    "error": record.errors.get(register.name),
                    "writable": register.writable,
                }
            )
        return {**self._device_state(device), "registers": registers}

    def api_history(
        self, name: str, register: str, since_ms: int | None
    ) -> dict[str, object] | None:
        """GET /api/devices/{name}/history: the register's kept readings, oldest first."""
        device = self._devices.get(name)
        if device is None or all(r.name != register for r in device.registers):
            return None
        history = self.board.devices.get(name, DeviceRecord()).history.get(register)
        readings = [] if history is None else list(history.since(since_ms))
        return {
            "device": name,
            "register": register,
            "limit": self.board.history_size,
            "readings": [{"ts": iso_ms(ts), "value": value} for ts, value in readings],
        }

    def _device_state(self, device: Device) -> dict[str, object]:
        record, health = self._seen(device)
        state = {None: "unknown", True: "online", False: "offline"}[record.online]
        retry_in = 0.0
        if health is not None and health.failures:
            retry_in = max(0.0, health.retry_at - time.monotonic())
        return {
            "name": device.name,
            "connection": device.connection,
            "unit": device.unit_id,
            "state": state,
            "since": _iso(record.since_ms),
            "offline_reason": record.reason or None,
            "last_read": _iso(record.last_success_ms),
            **_last_error(record, health),
            "backoff": {
                "failures_in_a_row": health.failures if health else 0,
                "retry_in_s": round(retry_in, 1),
            },
            "bad_registers": len(record.errors),
        }

    def _connection(self, name: str) -> dict[str, object]:
        link = self.links.get(name)
        requests, errors = self._request_counts(name)
        body: dict[str, object] = {
            "name": name,
            "type": self.config.connection(name).type,
            "state": "idle" if link is None else ("connected" if link.connected else "down"),
            "requests": requests,
            "errors": errors,
        }
        estimate = link.bus if link is not None else None
        if estimate is not None:
            body["bus"] = {
                "load": round(estimate.load, 3),  # share of the wire time the schedule needs
                "limit": 1.0,
                "cycle_s": round(estimate.cycle_s, 4),
                "shortest_interval_s": estimate.shortest_interval_s,
            }
        return body

    def _request_counts(self, connection: str) -> tuple[int, int]:
        if self.metrics is None:
            return 0, 0
        requests = errors = 0
        for family in self.metrics.requests.collect():
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["connection"] == connection:
                    requests += int(sample.value)
                    if sample.labels["result"] != "ok":
                        errors += int(sample.value)
        return requests, errors

    def refresh_metrics(self) -> None:
        """Scrape-time gauges: values owned by other parts, read just before each scrape."""
        if self.metrics is None:
            return
        self.metrics.buffer_depth.set(len(self.buffer))
        self.metrics.loop_lag.set(self.heartbeat.lag_s)
        self.metrics.broker_connected.set(1 if self.broker_connected else 0)


class Link:
    """What the page shows of one connection: is its port up, and the bus's planned load."""

    def __init__(self, is_connected: Callable[[], bool], bus: BusEstimate | None) -> None:
        self._is_connected = is_connected
        self.bus = bus

    @property
    def connected(self) -> bool:
        return self._is_connected()


class _Rate:
    """Readings per second over the last ~10 s, from a running total sampled on each call."""

    WINDOW_S = 10.0

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def per_s(self, total: int) -> float:
        now = time.monotonic()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW_S:
            self._samples.popleft()
        first_t, first_total = self._samples[0]
        return (total - first_total) / (now - first_t) if now > first_t else 0.0


def _quality(
    register: str, interval_s: float, ts_ms: int | None, record: DeviceRecord, now_ms: int
) -> str:
    """bad: failing on the last read; stale: not refreshed for 3 intervals (or never read)."""
    if register in record.errors:
        return "bad"
    if ts_ms is None or now_ms - ts_ms > 3 * interval_s * 1000 + 2000:
        return "stale"
    return "fresh"


def _iso(ts_ms: int | None) -> str | None:
    return iso_ms(ts_ms) if ts_ms is not None else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _last_error(record: DeviceRecord, health: DeviceHealth | None) -> dict[str, object]:
    """The newest error: a bad register (the board's) or a failed try (the worker's, which
    goes on counting while the device or its link stays down)."""
    error, at_ms = record.last_error, record.last_error_ms
    tried = None if health is None else health.last_error_ms
    if health is not None and tried is not None and (at_ms is None or tried > at_ms):
        error, at_ms = health.last_error, tried
    return {"last_error": error or None, "last_error_at": _iso(at_ms)}
