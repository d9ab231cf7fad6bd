"""The side-car seen from outside: heartbeat, systemd notifications, /metrics /healthz /status.

The same pieces the bridge uses (observe.http, observe.health, systemd); this module only
says what "healthy" and "status" mean for the side-car.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..config.model import Config
from ..errors import BridgeError
from ..observe.health import Heartbeat
from ..observe.http import HttpEndpoint
from ..observe.metrics import ForwarderMetrics
from ..observe.systemd import Notifier
from .delivery import Delivery, shown_url
from .intake import Intake
from .outbox import AsyncOutbox


@dataclass
class Observed:
    """What an operator (or systemd, or Prometheus) needs to know about the side-car."""

    config: Config
    intake: Intake
    delivery: Delivery
    store: AsyncOutbox
    metrics: ForwarderMetrics
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    notifier: Notifier = field(default_factory=Notifier)

    def tasks(self, stop: asyncio.Event) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The background jobs to run next to intake and delivery until `stop`."""
        self.intake.on_connection = self._connection
        return [
            ("forward-heartbeat", self.heartbeat.run(stop)),
            ("forward-watchdog", self.notifier.run_watchdog(self.heartbeat, stop)),
        ]

    async def start_http(self) -> HttpEndpoint | None:
        """forward.metrics_listen, bound now: a taken port fails the start with its key.

        Never metrics.listen: that is the bridge's port, and both run on one host."""
        listen = self.config.forward.metrics_listen
        if not listen:
            return None
        endpoint = HttpEndpoint(listen, self.metrics.registry, self.health, self.status)
        try:
            await endpoint.start()
        except BridgeError as exc:
            cause = exc.__cause__ or exc
            raise BridgeError(f"forward.metrics_listen {listen}: cannot listen: {cause}") from None
        return endpoint

    def _connection(self, up: bool) -> None:
        url = self.config.mqtt.url
        if up:  # READY=1 once: until the broker answers, the unit is "activating"
            self.notifier.ready(f"connected to {url}, outbox {self.store.depth}")
        else:
            self.notifier.status(f"broker {url} lost: reconnecting")

    def health(self) -> tuple[bool, str]:
        """/healthz: 200 while the broker is connected and the loop is alive (SPEC 6)."""
        if not self.heartbeat.fresh():
            return False, f"event loop stalled for {self.heartbeat.age_s():.1f}s"
        if not self.intake.port.connected:
            return False, f"broker {self.config.mqtt.url} not connected"
        gate = self.delivery.gate
        paused = ", delivery PAUSED (check the token)" if gate.paused else ""
        failing = ", the outbox FAILS (disk full?)" if gate.storage_failing else ""
        return True, f"ok: broker connected, outbox {self.store.depth}{paused}{failing}"

    def status(self) -> dict[str, object]:
        """/status: the side-car's state as JSON."""
        gate = self.delivery.gate
        return {
            "role": "forwarder",
            "subscription": self.intake.topic,
            "client_id": self.intake.port.client_id,
            "api_url": shown_url(self.delivery.ep.api_url),
            "batch_url": shown_url(self.delivery.ep.batch_url),
            "broker_connected": self.intake.port.connected,
            "outbox": self.store.depth,
            "outbox_max": self.store.sync.max_items,
            "delivery": _delivery_state(gate.paused, gate.storage_failing, gate.failing),
            "delivered": self.delivery.delivered,
            "dead_letters": self.delivery.dead_lettered,
            "dead_letters_kept": self.store.dead,
            "outbox_path": self.store.sync.path,
            "outbox_errors_in_a_row": gate.storage_attempt,
        }


def _delivery_state(paused: bool, outbox_failing: bool, api_failing: bool) -> str:
    if paused:
        return "paused"
    if outbox_failing:
        return "outbox failing"
    return "retrying" if api_failing else "ok"
