"""A test-side MQTT subscriber (paho in its own thread) that records what arrives."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.ports import wait_until


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any = None

    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def ts(self) -> float:
        """The reading's `ts` (read time) as Unix seconds."""
        return reading_ts(str(self.json()["ts"]))


def reading_ts(stamp: str) -> float:
    """Parse the reading JSON's ts, 2025-07-08T16:00:00.000Z, strictly."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class Subscriber:
    def __init__(
        self,
        port: int,
        topics: list[str] | str = "#",
        v5: bool = True,
        persistent_id: str | None = None,
    ) -> None:
        """persistent_id: a fixed client id with a broker-side session that outlives
        disconnects and broker restarts, so nothing published meanwhile is missed."""
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=persistent_id or f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.topics = [topics] if isinstance(topics, str) else topics
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        if persistent_id and v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
            self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("test subscriber did not get its SUBACK")

    def _on_connect(self, client: paho.Client, *_a: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(msg.topic, msg.payload, bool(msg.retain), getattr(msg, "properties", None))
            )

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, count: int = 1, timeout: float = 10) -> list[Received]:
        return wait_until(
            lambda: (got := self.on(topic)) and len(got) >= count and got,
            timeout,
            f"{count} message(s) on {topic}",
        )

    def wait_payload(self, topic: str, payload: str, timeout: float = 10) -> Received:
        return wait_until(
            lambda: next((m for m in self.on(topic) if m.text == payload), None),
            timeout,
            f"{payload!r} on {topic}",
        )

    def wait_payload_match(
        self, topic: str, predicate: Callable[[Any], bool], timeout: float = 10
    ) -> Any:
        """The first JSON payload on topic for which predicate holds."""

        def find() -> Any:
            for m in self.on(topic):
                data = m.json()
                if predicate(data):
                    return data
            return None

        return wait_until(find, timeout, f"a matching payload on {topic}")

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def publish(self, topic: str, payload: str | bytes, **kw: Any) -> None:
        self.client.publish(topic, payload, **kw).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
