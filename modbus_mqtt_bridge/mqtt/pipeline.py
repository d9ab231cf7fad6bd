"""The publish pipeline: readings and statuses to the broker, through the buffer when it is away.

While connected and nothing older waits, a reading goes straight to the session. While the
broker is away, or older readings still wait, readings are appended to the buffer so each
topic keeps its order; a drain task replays the buffer (original `ts` inside each payload)
and removes rows only once the broker has acknowledged them.

A QoS >= 1 reading is the pipeline's until the broker acknowledges it. Live readings are
tracked in flight (mid -> message, pruned in publish order as paho forgets acked ones), and
the moment a connection ends (lost, aborted, or closed at a stop or reload) the
unacknowledged ones are taken back from paho and written to the buffer, in their order,
ahead of anything newer: replayed after the reconnect or at the next start, never re-sent
by paho as well.

A buffer that cannot be written (locked, full, read-only) does not lose a reading: rows
wait in memory (bounded like the buffer, drops counted) and the write is retried with
backoff; every such error is counted (`modbus_bridge_buffer_errors_total`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

from ..config.model import Config, Device
from ..errors import MqttError, StorageError
from ..observe.metrics import BridgeMetrics
from ..readings import DeviceStatus, PublishFilter, ReadFailure, Reading, Value
from ..retry import Throttle, backoff_delay
from . import payloads, topics
from .buffer import Buffer, Buffered, MemoryBuffer
from .session import Session

log = logging.getLogger(__name__)

DRAIN_BATCH = 500
DRAIN_WINDOW = 2000  # replayed messages awaiting PUBACK at once
DROP_LOG_EVERY_S = 60.0
STORAGE_LOG_EVERY_S = 60.0

Row = tuple[str, str, int, bool]  # topic, payload, qos, retain


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
        self._tick_ts: dict[str, int] = {}  # device -> newest read of its open tick (ms)
        self._live: OrderedDict[int, Row] = OrderedDict()  # mid -> live reading, unacked
        self._inflight: dict[int, int] = {}  # mid -> buffer row id (replayed rows only)
        self._held: deque[Row] = deque()  # rows the buffer could not take yet
        self._drain_cursor = 0
        self._drain_wake = asyncio.Event()
        self._acked: list[int] = []
        self._storage_failures = 0
        self._flush_retry_at = 0.0  # monotonic: after a failed delete, no retry per PUBACK
        self._storage_log = Throttle(STORAGE_LOG_EVERY_S)
        self._dropped_seen = 0
        self._drop_logged_at = -DROP_LOG_EVERY_S
        # device -> register -> (topic, JSON template): rendered once, looked up by name
        self._parts: dict[str, dict[str, tuple[str, payloads.ReadingTemplate]]] = {}
        # first of the connect callbacks: device statuses right behind the bridge's own
        session.on_connected(self._on_connected)
        session.on_disconnected(self._take_back)

    # -- results from the workers ----------------------------------------------------

    def on_readings(
        self, device: Device, readings: Sequence[Reading], failures: Sequence[ReadFailure]
    ) -> None:
        """One request's results: its per-register messages go now; its values wait in the
        device's latest values for the device payload at the tick's end."""
        out: list[Row] = []
        if self.config.mqtt.per_register:
            now = asyncio.get_running_loop().time()
            out = self._reading_rows(device, readings, now)
        if self.config.mqtt.device_payload and readings:
            # every register's latest value, not only this tick's (intervals differ)
            latest = self._latest.setdefault(device.name, {})
            for reading in readings:
                latest[reading.register.name] = reading.value
            ts = max(r.ts_ms for r in readings)
            self._tick_ts[device.name] = max(ts, self._tick_ts.get(device.name, ts))
        if self.metrics is not None:
            self.metrics.readings_published.labels(device.name).inc(len(out))
            if failures:
                self.metrics.read_errors.labels(device.name).inc(len(failures))
        self.send(out)

    def on_tick_end(self, device: Device) -> None:
        """The device payload: one message per device per tick, stamped with the tick's
        newest read, when the tick read anything."""
        ts = self._tick_ts.pop(device.name, None)
        if ts is None:
            return
        row = (
            topics.device_payload(self.site, device.name),
            payloads.device_json(ts, self._latest[device.name]),
            self.qos,
            self.retain,
        )
        if self.metrics is not None:
            self.metrics.readings_published.labels(device.name).inc()
        self.send((row,))

    def _reading_rows(self, device: Device, readings: Sequence[Reading], now: float) -> list[Row]:
        """(topic, payload, qos, retain) of each reading the filter admits: the hot path, so
        a register's topic and JSON template are rendered once and looked up by name (never
        by hashing the frozen dataclasses), and a timestamp is formatted once per distinct
        ts (a request's readings share one)."""
        parts = self._parts.get(device.name)
        if parts is None:
            parts = self._parts[device.name] = {}
        admit, qos, retain = self.filter.admit, self.qos, self.retain
        rows: list[Row] = []
        stamp_ms, stamp = -1, ""
        for reading in readings:
            if not admit(reading, now):
                continue
            register = reading.register
            part = parts.get(register.name)
            if part is None:
                topic = topics.reading(self.site, device.name, register.name)
                part = parts[register.name] = (topic, payloads.reading_template(device, register))
            if reading.ts_ms != stamp_ms:
                stamp_ms, stamp = reading.ts_ms, payloads.iso_ms(reading.ts_ms)
            rows.append((part[0], payloads.render(part[1], reading.value, stamp), qos, retain))
        return rows

    def on_status(self, status: DeviceStatus) -> None:
        self.statuses[status.device.name] = status
        if self.metrics is not None:
            self.metrics.device_up.labels(status.device.name).set(1 if status.online else 0)
        if not status.online:
            self.filter.forget(status.device.name)
        if self.port.connected:
            try:
                self._publish_status(status.device.name, status.online)
            except MqttError as exc:  # sent again on the next connect
                log.debug("status of %s not sent: %s", status.device.name, exc)

    def _publish_status(self, device: str, online: bool) -> None:
        self.port.publish(
            topics.device_status(self.site, device),
            payloads.status_text(online),
            qos=1,
            retain=True,
        )

    @property
    def waiting(self) -> int:
        """Readings not yet handed to the broker: in the buffer or held for it."""
        return len(self.buffer) + len(self._held)

    def send(self, messages: Sequence[Row]) -> None:
        """Publish now, or buffer when the broker is away or older readings still wait."""
        if not messages:
            return
        if self.port.connected and not self._held and len(self.buffer) == 0:
            if self.qos == 0:  # nothing to track: the whole batch in one write
                try:
                    self.port.publish_qos0(messages)
                except MqttError as exc:
                    log.warning("publish refused: %s", exc)
                    self.port.abort(f"publish refused: {exc}")
                    self._store(messages)
                return
            sent = 0
            live = self._live
            try:
                for message in messages:
                    mid = self.port.publish(*message)
                    if message[2]:
                        live.pop(mid, None)  # a mid paho reuses was acked long ago
                        live[mid] = message
                    sent += 1
            except MqttError as exc:
                # paho refused one while connected: the link is not usable. Dropping it
                # takes back what is in flight (older) before the rest is buffered (newer).
                log.warning("publish refused after %d of %d: %s", sent, len(messages), exc)
                self.port.abort(f"publish refused: {exc}")
                messages = messages[sent:]
            else:
                self._prune_live()
                return
        self._store(messages)

    def _prune_live(self) -> None:
        """Forget live readings the broker acknowledged: oldest first, paho acks in order."""
        live, unacked = self._live, self.port.unacked
        while live:
            mid = next(iter(live))
            if unacked(mid):
                return
            del live[mid]

    def _take_back(self) -> None:
        """The connection ended: what paho holds unacknowledged becomes the buffer's again."""
        live = [(mid, row) for mid, row in self._live.items() if self.port.unacked(mid)]
        # a set: take_back tests every message paho holds against it; with a list that was
        # quadratic (20,000 held readings: 7 s with the loop blocked, not 8 ms)
        self.port.take_back({mid for mid, _ in live} | self._inflight.keys())
        self._live.clear()
        self._inflight.clear()
        self._drain_cursor = 0  # replayed rows not acked are replayed again, from the start
        self.port.on_ack = None
        if live:
            log.info("%d unacknowledged readings go back to the buffer", len(live))
            self._store([row for _, row in live])

    # -- the buffer ------------------------------------------------------------------

    def _store(self, rows: Iterable[Row]) -> None:
        """Append to the buffer; rows it cannot take wait in memory, in order, for a retry."""
        if self._held:
            self._hold(rows)
        else:
            try:
                self.buffer.append(rows)
            except StorageError as exc:
                self._storage_failed(exc)
                self._hold(rows)
        self._drain_wake.set()
        self._update_buffer_metrics()

    def _hold(self, rows: Iterable[Row]) -> None:
        self._held.extend(rows)
        while len(self._held) > self.config.buffer.max_readings:
            self._held.popleft()
            self.buffer.dropped += 1  # counted and logged like any buffer overflow

    def _write_held(self) -> None:
        """Raises StorageError while the buffer still refuses."""
        if self._held:
            self.buffer.append(list(self._held))
            self._held.clear()
            self._storage_recovered()
            self._update_buffer_metrics()

    def _storage_failed(self, exc: StorageError) -> None:
        self._storage_failures += 1
        if self.metrics is not None:
            self.metrics.buffer_errors.inc()
        held = self._storage_log.allow(time.monotonic())
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            log.warning("%s; %d readings wait in memory, retrying%s", exc, len(self._held), more)

    def _storage_recovered(self) -> None:
        if self._storage_failures:
            log.warning("buffer writable again")
            self._storage_log.reset()
        self._storage_failures = 0
        self._flush_retry_at = 0.0  # monotonic: after a failed delete, no retry per PUBACK

    # -- replay ----------------------------------------------------------------------

    def _on_connected(self) -> None:
        for status in self.statuses.values():
            self._publish_status(status.device.name, status.online)
        self._drain_wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Replay the buffer whenever connected, until stop."""
        drain = asyncio.create_task(self._drain_forever(), name="buffer-drain")
        try:
            await stop.wait()
        finally:
            drain.cancel()

    async def _drain_forever(self) -> None:
        """Storage errors back off like a network error; nothing here ends the bridge."""
        while True:
            await self._drain_wake.wait()
            self._drain_wake.clear()
            try:
                self._write_held()
                await self._drain()
            except StorageError as exc:
                self._storage_failed(exc)
            except Exception:
                log.exception("buffer drain failed; retrying")
                self._storage_failures += 1
            if self._held or self._acked or self._storage_failures:
                # the buffer still refuses (or the drain broke): back off, then retry
                await asyncio.sleep(backoff_delay(max(1, self._storage_failures), 0.5, 30.0))
                self._drain_wake.set()

    async def _drain(self) -> None:
        while self.port.connected and len(self.buffer) > 0:
            self._flush_acked()
            if self._acked:
                # Acked rows the buffer would not delete: peeking again would send them
                # again. Leave, so the caller backs off before the next try.
                return
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
        if not self._acked:
            self._storage_recovered()

    def _replay(self, rows: Sequence[Buffered]) -> None:
        self.port.on_ack = self._on_ack  # acks matter only while replayed rows are in flight
        for row in rows:
            try:
                mid = self.port.publish(row.topic, row.payload, row.qos, row.retain)
            except MqttError as exc:
                # Refused while connected (as in send()): the link is unusable, and
                # re-peeking the same rows at once would spin. Drop it; the reconnect replays.
                log.warning("replay refused: %s", exc)
                self.port.abort(f"publish refused: {exc}")
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

    def _flush_acked(self, force: bool = False) -> None:
        """Acked rows leave the buffer. Never raises (it runs in paho's ack callback): when
        the delete fails they stay listed and the drain retries; worst case, after a crash,
        they are sent once more, as QoS 1 allows."""
        if not self._acked or (not force and time.monotonic() < self._flush_retry_at):
            return  # a delete just failed: each try may wait out busy_timeout on the loop
        try:
            self.buffer.remove(self._acked)
        except StorageError as exc:
            self._storage_failed(exc)
            delay = backoff_delay(self._storage_failures, 0.5, 30.0)
            self._flush_retry_at = time.monotonic() + delay
            self._drain_wake.set()
            return
        self._flush_retry_at = 0.0
        self._acked = []
        self._update_buffer_metrics()

    # -- stopping --------------------------------------------------------------------

    async def settle(self) -> None:
        """Before the goodbye: let in-flight publishes be acknowledged (bounded), then every
        device goes `offline` (SPEC 3: before the bridge does)."""
        if not self.port.connected:
            return
        await self.port.wait_acked(2.0)
        self._flush_acked()
        try:
            for device in self.config.devices:
                self._publish_status(device.name, False)
        except MqttError as exc:
            log.warning("device statuses not sent at stop: %s", exc)

    def close(self) -> None:
        """After the goodbye and the disconnect: what was acknowledged leaves the buffer, the
        rest (taken back from paho) is in it; then the buffer is closed, whatever failed."""
        try:
            self._take_back()  # a no-op when the disconnect already did it
            self._flush_acked(force=True)  # the last chance before the buffer closes
            try:
                self._write_held()
            except StorageError as exc:
                log.error(  # noqa: TRY400  (one line: the reason is the message)
                    "%s: %d readings that could not be stored are lost", exc, len(self._held)
                )
        finally:
            waiting = self.waiting
            self.buffer.close()
        if waiting and isinstance(self.buffer, MemoryBuffer):
            log.error(
                "%d readings the broker never received were kept in memory only "
                '(buffer.path ":memory:") and are lost with this stop',
                waiting,
            )
        elif waiting:
            log.info("%d readings kept in the buffer for the next start", waiting)

    def _update_buffer_metrics(self) -> None:
        dropped = self.buffer.dropped - self._dropped_seen
        if dropped > 0:
            self._dropped_seen = self.buffer.dropped
            now = asyncio.get_running_loop().time()
            if now - self._drop_logged_at >= DROP_LOG_EVERY_S:
                self._drop_logged_at = now
                log.warning(
                    "buffer full (%d readings): dropped the oldest, %d so far",
                    self.waiting,
                    self.buffer.dropped,
                )
        if self.metrics is not None:
            self.metrics.buffer_depth.set(self.waiting)
            if dropped > 0:
                self.metrics.buffer_dropped.inc(dropped)
