"""The publisher: readings and statuses to the broker, through the buffer when it is away.

While connected and the buffer is empty, a reading goes straight to paho. While the
broker is away, or the buffer still holds older readings, readings are appended to the
buffer so each topic keeps its order; a drain task replays the buffer (original `ts`
inside each payload) and removes rows only once the broker has acknowledged them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..config.model import Config, Device
from ..errors import MqttError
from ..observe.metrics import BridgeMetrics
from ..readings import DeviceStatus, PublishFilter, ReadFailure, Reading, Value
from ..retry import backoff_delay
from . import payloads, topics
from .buffer import Buffer, Buffered
from .port import Message, MqttPort, OnMessage, Will, topic_matches

log = logging.getLogger(__name__)

DRAIN_BATCH = 500
DRAIN_WINDOW = 2000
DROP_LOG_EVERY_S = 60.0  # replayed messages awaiting PUBACK at once


class Publisher:
    def __init__(
        self,
        config: Config,
        buffer: Buffer,
        metrics: BridgeMetrics | None = None,
        port: MqttPort | None = None,
    ) -> None:
        self.config = config
        self.site = config.site
        self.qos = config.mqtt.qos
        self.retain = config.mqtt.retain
        self.buffer = buffer
        self.metrics = metrics
        self.port = port or MqttPort(
            config.mqtt,
            config.mqtt_client_id,
            will=Will(topics.bridge_status(config.site), "offline"),
        )
        self.filter = PublishFilter()
        self.statuses: dict[str, DeviceStatus] = {}
        self.latest: dict[str, dict[str, Value]] = {}
        self.last_errors: dict[str, dict[str, str]] = {}
        self.connected_event = asyncio.Event()
        self._inflight: dict[int, int] = {}  # mid -> buffer row id (replayed rows only)
        self._drain_cursor = 0
        self._drain_wake = asyncio.Event()
        self._acked: list[int] = []
        self._dropped_seen = 0
        self._drop_logged_at = -DROP_LOG_EVERY_S
        self._parts: dict[tuple[str, str], tuple[str, payloads.ReadingTemplate]] = {}
        self._subscriptions: list[tuple[str, int, OnMessage, bool]] = []
        self._connect_callbacks: list[Callable[[], None]] = []
        self.port.on_message = self._dispatch

    # -- extensions: command handling, discovery ... subscribe through the publisher ----

    def subscribe(
        self,
        topic_filter: str,
        handler: OnMessage,
        qos: int = 1,
        *,
        retain_as_published: bool = False,
    ) -> None:
        """Route messages matching topic_filter to handler; re-subscribed on every connect."""
        self._subscriptions.append((topic_filter, qos, handler, retain_as_published))
        if self.port.connected:
            self.port.subscribe(topic_filter, qos, retain_as_published=retain_as_published)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Call back after every (re)connect, once the bridge is announced online."""
        self._connect_callbacks.append(callback)

    def _dispatch(self, message: Message) -> None:
        for topic_filter, _qos, handler, _rap in self._subscriptions:
            if topic_matches(topic_filter, message.topic):
                try:
                    handler(message)
                except Exception:
                    log.exception("handler for %s failed on %s", topic_filter, message.topic)

    # -- results from the workers ----------------------------------------------------

    def on_tick(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        now = asyncio.get_running_loop().time()
        latest = self.latest.setdefault(device.name, {})
        errors = self.last_errors.setdefault(device.name, {})
        out: list[tuple[str, str, int, bool]] = []
        if self.config.mqtt.per_register:
            for reading in readings:
                latest[reading.register.name] = reading.value
                if self.filter.admit(reading, now):
                    topic, template = self._render_parts(device, reading)
                    payload = payloads.render(template, reading.value, reading.ts_ms)
                    out.append((topic, payload, self.qos, self.retain))
        else:
            for reading in readings:
                latest[reading.register.name] = reading.value
        for failure in failures:
            errors[failure.register.name] = failure.error
        if self.config.mqtt.device_payload and readings:
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

    # -- connection and replay -------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, keep connected, replay the buffer; until stop."""
        failures = 0
        drain = asyncio.create_task(self._drain_forever(), name="buffer-drain")
        try:
            while not stop.is_set():
                try:
                    await self.port.connect()
                except MqttError as exc:
                    failures += 1
                    delay = backoff_delay(failures, first_s=0.5, cap_s=30.0)
                    log.warning("broker unavailable (%s); retrying in %.1fs", exc, delay)
                    await _wait(stop, delay)
                    continue
                if failures:
                    log.warning("broker connection is back")
                failures = 0
                self._on_connected()
                await _wait_first(stop, self.port.wait_disconnected())
                self.connected_event.clear()
                self._set_connected_metric(0)
                if not stop.is_set():
                    log.warning("broker connection lost")
        finally:
            drain.cancel()
            await self._shutdown()

    def _on_connected(self) -> None:
        try:
            self.port.publish(topics.bridge_status(self.site), "online", qos=1, retain=True)
            for status in self.statuses.values():
                self._publish_status(status)
            for topic_filter, qos, _handler, rap in self._subscriptions:
                self.port.subscribe(topic_filter, qos, retain_as_published=rap)
            for callback in self._connect_callbacks:
                callback()
        except MqttError as exc:
            # the link dropped again right away; the run loop sees it and reconnects
            log.warning("broker connection lost while announcing: %s", exc)
        # rows handed to paho before the drop are re-sent by paho itself; continue after them
        self.connected_event.set()
        self._set_connected_metric(1)
        self._drain_wake.set()

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

    async def _shutdown(self) -> None:
        """Let in-flight QoS 1 publishes be acknowledged, say goodbye, keep the rest on disk."""
        if self.port.connected:
            await self.port.wait_acked(2.0)
            self._flush_acked()
            self.port.publish(topics.bridge_status(self.site), "offline", qos=1, retain=True)
            await self.port.wait_acked(1.0)
            await self.port.disconnect()
        self._flush_acked()
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

    def _set_connected_metric(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.broker_connected.set(value)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def _wait_first(stop: asyncio.Event, other: Coroutine[Any, Any, None]) -> None:
    tasks = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other)}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
