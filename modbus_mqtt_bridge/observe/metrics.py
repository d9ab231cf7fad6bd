"""Every Prometheus metric of the bridge and the side-car, defined in one place.

Labels name devices and connections, never values. Each process registers its own
set in a fresh CollectorRegistry so tests can run several in one interpreter. Counters
are declared without `_total`: prometheus_client appends it in the exposition.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


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
        self.request_duration = Histogram(
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
        self.lateness = Histogram(
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
