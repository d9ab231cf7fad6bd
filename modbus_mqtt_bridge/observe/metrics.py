"""Every Prometheus metric of the bridge and the side-car, defined in one place.

Labels name devices and connections, never values. Each process registers its own
set in a fresh CollectorRegistry so tests can run several in one interpreter. Counters
are declared without `_total`: prometheus_client appends it in the exposition.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from threading import Lock
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_go_float = cast(Callable[[float], str], floatToGoString)  # untyped in the library

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


# The upper bounds of CompactHistogram children, by their exact bits (-0.0 is not 0.0: its
# `le` label says "-0.0"); a list each, as the library keeps them, never changed.
_BOUNDS: dict[tuple[str, ...], list[float]] = {}


class CompactHistogram(Histogram):
    """prometheus_client's Histogram with each labelled child's bucket counts in one array
    under one lock: the library's child keeps a value object and a lock per bucket and one
    for the sum, ~4 KB a child with these 15 buckets; the bridge has two histograms per
    connection, 8 MB at 1,000 connections. The samples are the library's
    (tests/unit/test_metrics_histogram.py); exemplars are not kept (none is given here).
    """

    def _prepare_buckets(self, source_buckets: Sequence[float | str]) -> None:
        super()._prepare_buckets(source_buckets)
        # every child takes its parent's buckets: one list of them, not one per child
        bounds: list[float] = self._upper_bounds
        self._upper_bounds = _BOUNDS.setdefault(tuple(b.hex() for b in bounds), bounds)

    def _metric_init(self) -> None:
        self._created = time.time()
        self._counts = array("d", bytes(8 * len(self._upper_bounds)))
        self._total = 0.0
        self._value_lock = Lock()

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """As Histogram.observe: the sum, and the first bucket whose bound is >= amount."""
        if exemplar:
            raise ValueError("CompactHistogram keeps no exemplars")
        self._raise_if_not_observable()  # type: ignore[no-untyped-call]
        bounds = self._upper_bounds
        i = bisect_left(bounds, amount)
        with self._value_lock:
            self._total += amount
            if i < len(bounds) and amount <= bounds[i]:  # NaN: in no bucket, as there
                self._counts[i] += 1

    def _child_samples(self) -> Iterable[Sample]:
        with self._value_lock:
            counts, total = list(self._counts), self._total
        samples = []
        acc = 0.0
        for bound, count in zip(self._upper_bounds, counts, strict=True):
            acc += count
            samples.append(Sample("_bucket", {"le": _go_float(bound)}, acc, None, None))
        samples.append(Sample("_count", {}, acc, None, None))
        if self._upper_bounds[0] >= 0:
            samples.append(Sample("_sum", {}, total, None, None))
        if prometheus_metrics._use_created:  # PROMETHEUS_DISABLE_CREATED_SERIES, as there
            samples.append(Sample("_created", {}, self._created, None, None))
        return tuple(samples)


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, memory, open fds
        self.requests = Counter(
            "modbus_bridge_requests",
            "Modbus requests by device, function code and result",
            ["connection", "device", "function", "result"],
            registry=r,
        )
        self.request_duration = CompactHistogram(
            "modbus_bridge_request_duration_seconds",
            "Modbus request round-trip time",
            ["connection"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.device_up = Gauge(
            "modbus_bridge_device_up", "1 when the device answers", ["device"], registry=r
        )
        self.last_success = Gauge(
            "modbus_bridge_device_last_success_timestamp_seconds",
            "Unix time of the device's last successful read",
            ["device"],
            registry=r,
        )
        self.readings_published = Counter(
            "modbus_bridge_readings_published",
            "Readings handed to the broker",
            ["device"],
            registry=r,
        )
        self.read_errors = Counter(
            "modbus_bridge_read_errors",
            "Registers that could not be read or decoded",
            ["device"],
            registry=r,
        )
        self.bad_registers = Gauge(
            "modbus_bridge_bad_registers",
            "Registers the device refuses (illegal address/value), isolated and re-probed",
            ["device"],
            registry=r,
        )
        self.buffer_depth = Gauge(
            "modbus_bridge_buffer_readings", "Readings waiting in the disk buffer", registry=r
        )
        self.buffer_dropped = Counter(
            "modbus_bridge_buffer_dropped",
            "Oldest readings dropped because the buffer was full",
            registry=r,
        )
        self.buffer_errors = Counter(
            "modbus_bridge_buffer_errors",
            "Buffer reads or writes that failed (locked, disk full, read-only) and are retried",
            registry=r,
        )
        self.worker_restarts = Counter(
            "modbus_bridge_worker_restarts",
            "Workers restarted after an unexpected error (a bug: see the debug log)",
            ["connection"],
            registry=r,
        )
        self.handoff_errors = Counter(
            "modbus_bridge_handoff_errors",
            "Unexpected errors handing a device's results to the publish pipeline",
            ["connection"],
            registry=r,
        )
        self.missed_ticks = Counter(
            "modbus_bridge_schedule_missed_ticks",
            "Poll ticks skipped because the connection was still busy",
            ["connection"],
            registry=r,
        )
        self.lateness = CompactHistogram(
            "modbus_bridge_schedule_lateness_seconds",
            "How late a poll started against its fixed-rate tick",
            ["connection"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commands = Counter(
            "modbus_bridge_commands", "Write commands by outcome", ["device", "outcome"], registry=r
        )
        self.broker_connected = Gauge(
            "modbus_bridge_broker_connected", "1 while connected to the broker", registry=r
        )
        self.frame_errors = Counter(
            "modbus_bridge_frame_errors",
            "Damaged or stray frames on an RTU line, by kind (crc, partial, garbage, late)",
            ["connection", "kind"],
            registry=r,
        )
        self.loop_lag = Gauge(
            "modbus_bridge_event_loop_lag_seconds",
            "How late the main loop's last heartbeat woke up (a busy or blocked loop)",
            registry=r,
        )
        self.discovery_published = Counter(
            "modbus_bridge_discovery_messages",
            "Home Assistant discovery messages published",
            registry=r,
        )


class ForwarderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, memory, open fds
        self.outbox_depth = Gauge(
            "modbus_forwarder_outbox_readings", "Readings waiting in the outbox", registry=r
        )
        self.deliveries = Counter(
            "modbus_forwarder_deliveries",
            "HTTP delivery attempts by status code ('network' for no answer)",
            ["status"],
            registry=r,
        )
        self.dead_letters = Counter(
            "modbus_forwarder_dead_letters", "Readings the API rejected for good (422)", registry=r
        )
        self.delivery_latency = Histogram(
            "modbus_forwarder_delivery_latency_seconds",
            "From the reading's ts to its 2xx from the API",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "modbus_forwarder_messages_received",
            "Reading messages taken from the broker",
            registry=r,
        )
        self.broker_connected = Gauge(
            "modbus_forwarder_broker_connected", "1 while connected to the broker", registry=r
        )
        self.ignored = Counter(
            "modbus_forwarder_messages_ignored",
            "Messages that are not readings for Laravel (status/command topics, bad JSON...)",
            ["reason"],
            registry=r,
        )
        self.delivered = Counter(
            "modbus_forwarder_readings_delivered", "Readings the API stored (2xx)", registry=r
        )
        self.paused = Gauge(
            "modbus_forwarder_delivery_paused",
            "1 while delivery is paused because the API refuses the token or endpoint",
            registry=r,
        )
        self.storage_errors = Counter(
            "modbus_forwarder_outbox_errors",
            "Outbox operations that failed (disk full, lock held too long) and are retried",
            ["op"],
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "modbus_forwarder_dead_letters_dropped",
            "Oldest dead letters dropped to stay within forward.dead_letter_max",
            registry=r,
        )
        self.dead_letters_kept = Gauge(
            "modbus_forwarder_dead_letters_kept", "Dead letters in the outbox now", registry=r
        )
        self.outbox_full = Gauge(
            "modbus_forwarder_outbox_full",
            "1 while the outbox is full and new readings are left at the broker",
            registry=r,
        )
