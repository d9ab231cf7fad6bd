"""The bridge's optional features, attached from outside: HTTP endpoint, HA discovery, systemd.

Each one subscribes to the MQTT session (connect callbacks, topic subscriptions) or reads state
the workers and the board already keep; none adds an `if` to the core (ARCHITECTURE idea 11).
`Bridge.run` only awaits `start()` and runs `tasks()` in its TaskGroup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

from ..config.model import Config
from ..errors import MqttError
from ..modbus.wiretime import estimate_bus
from ..modbus.worker import Worker
from ..mqtt.buffer import Buffer
from ..mqtt.session import Session
from ..observe.health import Heartbeat
from ..observe.http import HttpEndpoint
from ..observe.metrics import BridgeMetrics
from ..observe.systemd import Notifier
from ..writes.handler import CommandHandler
from .board import BridgeStatus, DeviceBoard, Link
from .discovery import Discovery
from .http_write import HttpWrites


class BridgeExtensions:
    def __init__(
        self,
        config: Config,
        session: Session,
        *,
        buffer: Buffer,
        board: DeviceBoard,
        workers: Mapping[str, Worker],
        metrics: BridgeMetrics,
        commands: CommandHandler | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.heartbeat = Heartbeat()
        self.notifier = Notifier(environ)
        self.status = BridgeStatus(
            config,
            board,
            buffer=buffer,
            broker_connected=lambda: session.connected,
            heartbeat=self.heartbeat,
            metrics=metrics,
            health={name: worker.health for name, worker in workers.items()},
            links={name: _link(worker) for name, worker in workers.items()},
        )
        writes = HttpWrites(commands) if commands is not None else None
        self.http = (
            HttpEndpoint(
                config.metrics.listen,
                metrics.registry,
                self.status.health,
                self.status.status,
                before_scrape=self.status.refresh_metrics,
                api=self.status,
                write=writes.write if writes is not None else None,
                write_token=config.metrics.write_token,
            )
            if config.metrics.listen
            else None
        )
        self.discovery = (
            Discovery(config, self._publish_retained, metrics)
            if config.homeassistant.discovery
            else None
        )
        session.on_connected(self._on_connected)
        if self.discovery is not None:
            session.on_connected(self.discovery.publish_all)
            session.subscribe(self.discovery.status_topic, self.discovery.on_ha_status)

    async def start(self) -> None:
        """Bind what must bind before the bridge counts as started (a taken port fails now)."""
        if self.http is not None:
            await self.http.start()
        self.notifier.status(f"connecting to {self.config.mqtt.url}")

    def tasks(self, stop: asyncio.Event) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """(name, coroutine) for the service's TaskGroup; each returns once stop is set."""
        tasks: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("heartbeat", self.heartbeat.run(stop)),
            ("sd-watchdog", self.notifier.run_watchdog(self.heartbeat, stop)),
        ]
        if self.http is not None:
            tasks.append(("http", self.http.serve(stop)))
        return tasks

    def _on_connected(self) -> None:
        self.notifier.ready(f"connected to {self.config.mqtt.url}")

    def _publish_retained(self, topic: str, payload: str) -> None:
        # Straight to the port, never the buffer: discovery is re-sent on every connect, so
        # a copy kept while the broker is away would only be a stale duplicate.
        if not self.session.connected:
            raise MqttError("not connected")
        self.session.publish(topic, payload, qos=1, retain=True)


def _link(worker: Worker) -> Link:
    """The page's view of a connection: its port's state, live, and the bus's planned load."""
    return Link(lambda: worker.port.connected, estimate_bus(worker.conn, worker.requests))
