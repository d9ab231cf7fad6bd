"""The bridge's MQTT session: connect and keep connected, subscriptions, incoming routing.

A visible reconnect loop with capped, jittered backoff. On every connect the bridge is
announced (`{site}/bridge/status` = `online`), every subscription is made again and the
connect callbacks run (device statuses, discovery, systemd ready...). Incoming messages
are routed to the handler of each matching subscription. Everything the bridge publishes
goes through `publish` here: nothing outside `mqtt/` touches the port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import MqttError
from ..observe.metrics import BridgeMetrics
from ..retry import backoff_delay
from .port import Message, MqttPort, OnMessage, PublishProperties, Will, topic_matches

log = logging.getLogger(__name__)


class Session:
    """Connection, subscriptions and routing; publishing for everyone on the bridge."""

    def __init__(
        self,
        port: MqttPort,
        birth: Will,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.port = port  # for the pipeline beside it in mqtt/, nobody else
        self.birth = birth  # the online announcement; its opposite is the port's will
        self.metrics = metrics
        self.connected_event = asyncio.Event()
        self._subscriptions: list[tuple[str, int, OnMessage, bool]] = []
        self._connect_callbacks: list[Callable[[], None]] = []
        self.port.on_message = self._dispatch

    @property
    def connected(self) -> bool:
        return self.port.connected

    # -- for extensions and the command handler --------------------------------------

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

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 1,
        retain: bool = False,
        properties: PublishProperties | None = None,
    ) -> int:
        """Hand one message to the broker connection; returns its mid. Raises MqttError."""
        return self.port.publish(topic, payload, qos, retain, properties)

    def _dispatch(self, message: Message) -> None:
        for topic_filter, _qos, handler, _rap in self._subscriptions:
            if topic_matches(topic_filter, message.topic):
                try:
                    handler(message)
                except Exception:
                    log.exception("handler for %s failed on %s", topic_filter, message.topic)

    # -- the connect loop ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, keep connected, until stop (the connection stays open for `close`)."""
        failures = 0
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
            self._announce()
            await _wait_first(stop, self.port.wait_disconnected())
            self.connected_event.clear()
            self._set_connected_metric(0)
            if not stop.is_set():
                log.warning("broker connection lost")

    def _announce(self) -> None:
        try:
            b = self.birth
            self.port.publish(b.topic, b.payload, qos=b.qos, retain=b.retain)
            for topic_filter, qos, _handler, rap in self._subscriptions:
                self.port.subscribe(topic_filter, qos, retain_as_published=rap)
            for callback in self._connect_callbacks:
                callback()
        except MqttError as exc:
            # the link dropped again right away; the run loop sees it and reconnects
            log.warning("broker connection lost while announcing: %s", exc)
        self.connected_event.set()
        self._set_connected_metric(1)

    async def close(self, goodbye: str) -> None:
        """Say goodbye on the birth topic (retained), let it be acknowledged, disconnect."""
        if self.port.connected:
            self.port.publish(self.birth.topic, goodbye, qos=1, retain=True)
            await self.port.wait_acked(1.0)
            await self.port.disconnect()

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
