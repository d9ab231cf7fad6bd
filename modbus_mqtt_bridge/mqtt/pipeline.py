"""The publish pipeline: readings and statuses to the broker, through the buffer when it is away.

While connected and the buffer is empty, a reading goes straight to the session. While the
broker is away, or the buffer still holds older readings, readings are appended to the
buffer so each topic keeps its order; a drain task replays the buffer (original `ts`
inside each payload) and removes rows only once the broker has acknowledged them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..config.model import Config, Device
from ..errors import MqttError
from ..observe.metrics import BridgeMetrics
from ..readings import DeviceStatus, PublishFilter, ReadFailure, Reading, Value
from . import payloads, topics
from .buffer import Buffer, Buffered
from .session import Session

log = logging.getLogger(__name__)

DRAIN_BATCH = 500
DRAIN_WINDOW = 2000  # replayed messages awaiting PUBACK at once
DROP_LOG_EVERY_S = 60.0


class Pipeline:
    """A worker Sink: renders what the workers report and sees it to the broker."""

    def __init__(
        self,
        config: Config,
        session: Session,
        buffer: Buffer,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.config = config
        self.site = config.site
        self.qos = config.mqtt.qos
        self.retain = config.mqtt.retain
        self.session = session
        self.port = session.port
        self.buffer = buffer
        self.metrics = metrics
        self.filter = PublishFilter()
        self.statuses: dict[str, DeviceStatus] = {}
        self._latest: dict[str, dict[str, Value]] = {}  # device -> register -> value
        self._inflight: dict[int, int] = {}  # mid -> buffer row id (replayed rows only)
        self._drain_cursor = 0
        self._drain_wake = asyncio.Event()
        self._acked: list[int] = []
        self._dropped_seen = 0
        self._drop_logged_at = -DROP_LOG_EVERY_S
        self._parts: dict[tuple[str, str], tuple[str, payloads.ReadingTemplate]] = {}
        # first of the connect callbacks: device statuses right behind the bridge's own
        session.on_connected(self._on_connected)

    # -- results from the workers ----------------------------------------------------

    def on_tick(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        now = asyncio.get_running_loop().time()
        out: list[tuple[str, str, int, bool]] = []
        if self.config.mqtt.per_register:
            for reading in readings:
                if self.filter.admit(reading, now):
                    topic, template = self._render_parts(device, reading)
                    payload = payloads.render(template, reading.value, reading.ts_ms)
                    out.append((topic, payload, self.qos, self.retain))
        if self.config.mqtt.device_payload and readings:
            # every register's latest value, not only this tick's (intervals differ)
            latest = self._latest.setdefault(device.name, {})
            for reading in readings:
                latest[reading.register.name] = reading.value
            ts = max(r.ts_ms for r in readings)
            out.append(
                (
                    topics.device_payload(self.site, device.name),
                    payloads.device_json(ts, latest),
                    self.qos,
                    self.retain,
                )
            )
        if self.metrics is not None:
            self.metrics.readings_published.labels(device.name).inc(len(out))
            if failures:
                self.metrics.read_errors.labels(device.name).inc(len(failures))
        self.send(out)

    def _render_parts(
        self, device: Device, reading: Reading
    ) -> tuple[str, payloads.ReadingTemplate]:
        key = (device.name, reading.register.name)
        parts = self._parts.get(key)
        if parts is None:
            topic = topics.reading(self.site, device.name, reading.register.name)
            parts = self._parts[key] = (topic, payloads.reading_template(device, reading.register))
        return parts

    def on_status(self, status: DeviceStatus) -> None:
        self.statuses[status.device.name] = status
        if self.metrics is not None:
            self.metrics.device_up.labels(status.device.name).set(1 if status.online else 0)
        if not status.online:
            self.filter.forget(status.device.name)
        if self.port.connected:
            self._publish_status(status)

    def _publish_status(self, status: DeviceStatus) -> None:
        self.port.publish(
            topics.device_status(self.site, status.device.name),
            payloads.status_text(status.online),
            qos=1,
            retain=True,
        )

    def send(self, messages: Sequence[tuple[str, str, int, bool]]) -> None:
        """Publish now, or buffer when the broker is away or older readings still wait."""
        if not messages:
            return
        if self.port.connected and len(self.buffer) == 0:
            sent = 0
            try:
                for topic, payload, qos, retain in messages:
                    self.port.publish(topic, payload, qos, retain)
                    sent += 1
            except MqttError:
                # paho took the first `sent`; only the rest waits in the buffer
                log.debug(
                    "publish failed after %d of %d; the rest goes to the buffer",
                    sent,
                    len(messages),
                )
                messages = messages[sent:]
            else:
                return
        self.buffer.append(messages)
        self._drain_wake.set()
        self._update_buffer_metrics()

    # -- replay ----------------------------------------------------------------------

    def _on_connected(self) -> None:
        for status in self.statuses.values():
            self._publish_status(status)
        # rows handed to paho before the drop are re-sent by paho itself; continue after them
        self._drain_wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Replay the buffer whenever connected, until stop."""
        drain = asyncio.create_task(self._drain_forever(), name="buffer-drain")
        try:
            await stop.wait()
        finally:
            drain.cancel()

    async def _drain_forever(self) -> None:
        while True:
            await self._drain_wake.wait()
            self._drain_wake.clear()
            while self.port.connected and len(self.buffer) > 0:
                self._flush_acked()
                if len(self._inflight) >= DRAIN_WINDOW:
                    await asyncio.sleep(0.005)  # wait for PUBACKs to open the window
                    continue
                rows = self.buffer.peek(self._drain_cursor, DRAIN_BATCH)
                if not rows:
                    if self._inflight:
                        await asyncio.sleep(0.005)
                        continue
                    self._drain_cursor = 0  # rows left behind a reconnect: start over
                    rows = self.buffer.peek(0, DRAIN_BATCH)
                self._replay(rows)
                await asyncio.sleep(0)  # let the workers' live readings interleave
            self._flush_acked()

    def _replay(self, rows: Sequence[Buffered]) -> None:
        self.port.on_ack = self._on_ack  # acks matter only while replayed rows are in flight
        for row in rows:
            try:
                mid = self.port.publish(row.topic, row.payload, row.qos, row.retain)
            except MqttError:
                return
            self._drain_cursor = row.id
            if row.qos == 0:
                self._acked.append(row.id)
            else:
                self._inflight[mid] = row.id

    def _on_ack(self, mid: int) -> None:
        row = self._inflight.pop(mid, None)
        if row is not None:
            self._acked.append(row)
            if len(self._acked) >= DRAIN_BATCH or not self._inflight:
                self._flush_acked()
        if not self._inflight:
            self.port.on_ack = None

    def _flush_acked(self) -> None:
        if self._acked:
            self.buffer.remove(self._acked)
            self._acked = []
            self._update_buffer_metrics()

    # -- stopping --------------------------------------------------------------------

    async def settle(self) -> None:
        """Before the goodbye: let in-flight QoS 1 publishes be acknowledged (bounded)."""
        if self.port.connected:
            await self.port.wait_acked(2.0)
            self._flush_acked()

    def close(self) -> None:
        """After the goodbye: what was acknowledged leaves the buffer; the rest stays."""
        try:
            self._flush_acked()
        finally:
            self.buffer.close()

    def _update_buffer_metrics(self) -> None:
        dropped = self.buffer.dropped - self._dropped_seen
        if dropped > 0:
            self._dropped_seen = self.buffer.dropped
            now = asyncio.get_running_loop().time()
            if now - self._drop_logged_at >= DROP_LOG_EVERY_S:
                self._drop_logged_at = now
                log.warning(
                    "buffer full (%d readings): dropped the oldest, %d so far",
                    len(self.buffer),
                    self.buffer.dropped,
                )
        if self.metrics is not None:
            self.metrics.buffer_depth.set(len(self.buffer))
            if dropped > 0:
                self.metrics.buffer_dropped.inc(dropped)
