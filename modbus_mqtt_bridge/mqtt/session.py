"""The bridge's MQTT session: connect and keep connected, subscriptions, incoming routing.

A visible reconnect loop with capped, jittered backoff. On every connect the bridge is
announced (`{site}/bridge/status` = `online`), every subscription is made again and the
connect callbacks run (device statuses, discovery, systemd ready...). Incoming messages
are routed to the handler of each matching subscription. Everything the bridge publishes
goes through `publish` here: nothing outside `mqtt/` touches the port.

The session is connected only while the port says so, and the port learns it from paho's
own callbacks. One more check paho lacks: a link that takes publishes but acknowledges
none for `ack_timeout_s` is dead (a blackholed route, a hung broker), so it is dropped and
made again instead of waiting out 1.5 keepalives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import MqttError
from ..observe.metrics import BridgeMetrics
from ..retry import backoff_delay
from .port import Message, MqttPort, OnMessage, PublishProperties, Will
from .topics import topic_matches

log = logging.getLogger(__name__)

WATCH_EVERY_S = 1.0  # how often a connected session looks at its oldest unacked publish
MIN_ACK_TIMEOUT_S = 5.0


def ack_timeout_for(keepalive_s: float) -> float:
    """The bound used: half the keepalive (paho's own check needs 1.5 to 2 of them), and
    never so short that a busy broker's replay of a full window looks dead."""
    return max(MIN_ACK_TIMEOUT_S, keepalive_s / 2)


class Session:
    """Connection, subscriptions and routing; publishing for everyone on the bridge."""

    def __init__(
        self,
        port: MqttPort,
        birth: Will,
        metrics: BridgeMetrics | None = None,
        *,
        ack_timeout_s: float | None = None,
    ) -> None:
        self.port = port  # for the pipeline beside it in mqtt/, nobody else
        self.birth = birth  # the online announcement; its opposite is the port's will
        self.metrics = metrics
        self.ack_timeout_s = ack_timeout_s or ack_timeout_for(port.cfg.keepalive_s)
        self.connected_event = asyncio.Event()
        self._subscriptions: list[tuple[str, int, OnMessage, bool]] = []
        self._connect_callbacks: list[Callable[[], None]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._ever_connected = False
        self.port.on_message = self._dispatch
        self.port.on_disconnected = self._link_ended

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

    def on_disconnected(self, callback: Callable[[], None]) -> None:
        """Call back at once (synchronously, before anything else runs) when a connection
        ends, whatever ended it: the pipeline takes back what the broker has not acked."""
        self._disconnect_callbacks.append(callback)

    def _link_ended(self, reason: str) -> None:
        self.connected_event.clear()
        self._set_connected_metric(0)
        for callback in self._disconnect_callbacks:
            try:
                callback()
            except Exception:
                log.exception("disconnect callback failed (%s)", reason)

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
                if not await _unless_stopped(stop, self.port.connect()):
                    return  # stopped while connecting (a blackholed CONNACK can take 10 s)
            except MqttError as exc:
                failures += 1
                delay = backoff_delay(failures, first_s=0.5, cap_s=30.0)
                log.warning("broker unavailable (%s); retrying in %.1fs", exc, delay)
                await _wait(stop, delay)
                continue
            if not self._ever_connected:
                log.info("connected to the broker %s", self.port.cfg.url)
                self._ever_connected = True
            elif failures:
                log.warning("broker connection is back")
            failures = 0
            self._announce()
            await self._watch(stop)
            if not stop.is_set():
                log.warning("broker connection lost")

    async def _watch(self, stop: asyncio.Event) -> None:
        """Until stop or the end of the connection; drop a link that acknowledges nothing."""
        while self.port.connected and not stop.is_set():
            await _wait_first(stop, self.port.wait_disconnected(), timeout_s=WATCH_EVERY_S)
            waited = self.port.oldest_unacked_age_s()
            if waited > self.ack_timeout_s and self.port.connected:
                log.warning(
                    "the broker has acknowledged nothing for %.0fs: dropping the link", waited
                )
                self.port.abort(f"no acknowledgement for {waited:.0f}s")

    def _announce(self) -> None:
        try:
            b = self.birth
            self.port.publish(b.topic, b.payload, qos=b.qos, retain=b.retain)
            for topic_filter, qos, _handler, rap in self._subscriptions:
                self.port.subscribe(topic_filter, qos, retain_as_published=rap)
            for callback in self._connect_callbacks:
                try:
                    callback()
                except MqttError as exc:
                    if not self.port.connected:
                        raise
                    # one refused publish (paho's queue full) must not skip the others
                    log.warning("connect callback: %s", exc)
                except Exception:
                    log.exception("connect callback failed")  # a bug there ends nothing
        except MqttError as exc:
            # the link dropped again right away; the run loop sees it and reconnects
            log.warning("broker connection lost while announcing: %s", exc)
        if self.port.connected:
            self.connected_event.set()
            self._set_connected_metric(1)

    async def close(self, goodbye: str) -> None:
        """Say goodbye on the birth topic (retained), let it be acknowledged, disconnect.
        Never raises for the broker's sake: a stop must finish whatever the link does."""
        try:
            if self.port.connected:
                self.port.publish(self.birth.topic, goodbye, qos=1, retain=True)
                await self.port.wait_acked(1.0)
        except MqttError as exc:
            log.warning("could not say %r on %s: %s", goodbye, self.birth.topic, exc)
        finally:
            await self.port.disconnect()

    def _set_connected_metric(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.broker_connected.set(value)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run work unless stop comes first (then work is cancelled): True if it finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, MqttError):
            await task
        return False
    task.result()  # its MqttError, if any
    return True


async def _wait_first(
    stop: asyncio.Event, other: Coroutine[Any, Any, None], timeout_s: float | None = None
) -> None:
    tasks = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other)}
    try:
        await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
