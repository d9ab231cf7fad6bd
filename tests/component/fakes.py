"""Fake ports for the component tests, with paho's and pymodbus's observable semantics.

`FakeMqttPort` has MqttPort's interface and behaves as paho does where the pipeline can
see it: QoS>0 publishes wait in an out queue until acknowledged, are re-sent after a
reconnect unless taken back, and a disconnect is reported through `on_disconnected` at
once. The broker behind it (`FakeBroker`) acknowledges, swallows (blackhole) or is away.
`FakeModbusPort` answers every read with a counter, so the order of readings is visible
in their values. Both take their time from the running loop (virtual in these tests).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from modbus_mqtt_bridge.config.model import Connection, MqttConfig
from modbus_mqtt_bridge.errors import ModbusConnectionError, MqttError
from modbus_mqtt_bridge.mqtt.port import Message


@dataclass
class FakeBroker:
    up: bool = True
    blackhole: bool = False  # the link takes publishes; nothing arrives, nothing is acked
    delivered: list[tuple[str, str, bool]] = field(default_factory=list)  # topic, payload, retain

    def on(self, topic: str) -> list[str]:
        return [p for t, p, _ in self.delivered if t == topic]


@dataclass
class _Out:
    topic: str
    payload: str
    qos: int
    retain: bool
    sent_at: float


class FakeMqttPort:
    def __init__(self, broker: FakeBroker, cfg: MqttConfig | None = None) -> None:
        self.broker = broker
        self.cfg = cfg or MqttConfig(keepalive_s=10.0)
        self.client_id = "fake"
        self.on_message: Callable[[Message], None] | None = None
        self.on_disconnected: Callable[[str], None] | None = None
        self.on_ack: Callable[[int], None] | None = None
        self.subscriptions: list[str] = []
        self.publish_error: MqttError | None = None  # raise this from publish (queue full)
        self._connected = False
        self._gone = asyncio.Event()
        self._gone.set()
        self._out: OrderedDict[int, _Out] = OrderedDict()
        self._mid = 0

    # -- connection ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self, timeout_s: float = 10.0) -> None:
        if not self.broker.up:
            raise MqttError("cannot connect: connection refused")
        if self.broker.blackhole:
            await asyncio.sleep(timeout_s)
            raise MqttError("cannot connect: timed out")
        self._connected = True
        self._gone.clear()
        now = asyncio.get_running_loop().time()
        for mid, out in list(self._out.items()):  # paho re-sends what it still holds
            out.sent_at = now
            self._send(mid, out)

    async def wait_disconnected(self) -> None:
        await self._gone.wait()

    def drop(self, reason: str = "link lost") -> None:
        """The broker or the network ended the connection (paho's on_disconnect)."""
        if self._connected:
            self._connected = False
            self._gone.set()
            if self.on_disconnected is not None:
                self.on_disconnected(reason)

    def abort(self, reason: str) -> None:
        self.drop(reason)

    async def disconnect(self) -> None:
        self.drop("closed by us")

    # -- traffic ---------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes | str, qos: int, retain: bool, properties: Any = None
    ) -> int:
        if self.publish_error is not None:
            raise self.publish_error
        text = payload.decode() if isinstance(payload, bytes) else payload
        if not self._connected and qos == 0:
            raise MqttError("publish failed: not connected")
        self._mid = self._mid % 65535 + 1
        out = _Out(topic, text, qos, retain, asyncio.get_running_loop().time())
        if qos > 0:
            self._out[self._mid] = out
        if self._connected:
            self._send(self._mid, out)
        return self._mid

    def publish_qos0(self, messages: Any) -> None:
        if self.publish_error is not None:
            raise self.publish_error
        for topic, payload, _qos, retain in messages:
            self.publish(topic, payload, 0, retain)

    def _send(self, mid: int, out: _Out) -> None:
        if self.broker.blackhole or not self.broker.up:
            return
        asyncio.get_running_loop().call_soon(self._arrive, mid, out)

    def _arrive(self, mid: int, out: _Out) -> None:
        if not self._connected or self.broker.blackhole:
            return
        self.broker.delivered.append((out.topic, out.payload, out.retain))
        if self._out.pop(mid, None) is not None and self.on_ack is not None:
            self.on_ack(mid)

    def subscribe(self, topic: str, qos: int = 1, *, retain_as_published: bool = False) -> None:
        if not self._connected:
            raise MqttError(f"subscribe to {topic!r} failed: not connected")
        self.subscriptions.append(topic)

    def ack(self, mid: int, qos: int) -> None:
        return

    async def wait_acked(self, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._out and self._connected:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return not self._out

    @property
    def pending_acks(self) -> int:
        return len(self._out)

    def unacked(self, mid: int) -> bool:
        return mid in self._out

    def oldest_unacked_age_s(self) -> float:
        if not self._out:
            return 0.0
        return asyncio.get_running_loop().time() - next(iter(self._out.values())).sent_at

    def take_back(self, mids: Collection[int]) -> None:
        for mid in mids:
            self._out.pop(mid, None)


class FakeModbusPort:
    """Every read answers the next value of one counter: later reads, larger values."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.on_frame_error: Any = None
        self.turnaround_s: dict[int, float] = {}
        self.line = None
        self.counter = 0
        self.explode: list[BaseException] = []  # raised by the next reads, one each
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    def close(self) -> None:
        self._connected = False

    async def read(self, table: Any, address: int, count: int, unit_id: int) -> list[int]:
        if not self._connected:
            raise ModbusConnectionError("not connected")
        if self.explode:
            raise self.explode.pop(0)
        self.counter += 1
        return [self.counter % 65536] * count
