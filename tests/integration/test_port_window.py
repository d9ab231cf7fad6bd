"""The port's own in-flight window, with real paho and a real Mosquitto (issue 16).

paho with its own in-flight limit queues the excess in its out dict and walks that dict
on every PUBACK (O(n) per ack). The port keeps the excess itself instead: paho must never
hold a message it has not sent, and what waits in the port's queue must keep its order,
reach the broker once, and be taken back at a disconnect like what paho holds.
On the code before the window (paho limited to 1,000, queueing the rest) the first test
fails: paho holds 2,000 queued messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from modbus_mqtt_bridge.config.model import MqttConfig
from modbus_mqtt_bridge.mqtt import port as port_module
from modbus_mqtt_bridge.mqtt.port import MqttPort
from tests.support.mosquitto import Mosquitto
from tests.support.ports import wait_until
from tests.support.subscriber import Subscriber

WINDOW = getattr(port_module, "INFLIGHT", 1000)
COUNT = 3 * WINDOW


def _port(broker: Mosquitto, name: str) -> MqttPort:
    return MqttPort(MqttConfig(url=broker.url, qos=1, retain=False), f"test-window-{name}")


def _payloads(sub: Subscriber, topic: str) -> list[str]:
    return [m.text for m in sub.on(topic)]


def _unsent_in_paho(port: MqttPort) -> int:
    return sum(m.state != paho.mqtt_ms_wait_for_puback for m in port._client._out_messages.values())


def test_paho_holds_only_the_window_and_everything_arrives_once_in_order(
    broker: Mosquitto,
) -> None:
    topic = "window/order"
    sub = Subscriber(broker.port, topic)

    async def scenario() -> None:
        port = _port(broker, "order")
        await port.connect()
        try:
            mids = [port.publish(topic, str(n), 1, False) for n in range(COUNT)]
            assert len(set(mids)) == COUNT
            assert port.pending_acks == COUNT
            assert len(port._client._out_messages) <= WINDOW
            assert _unsent_in_paho(port) == 0  # queued in paho: walked on every PUBACK
            assert port.unacked(mids[0])
            assert port.unacked(mids[-1])
            assert await port.wait_acked(20)
            assert not port.unacked(mids[0])
            assert not port.unacked(mids[-1])
        finally:
            await port.disconnect()

    try:
        asyncio.run(scenario())
        wait_until(lambda: len(sub.on(topic)) >= COUNT, 10, f"{COUNT} messages on {topic}")
        assert _payloads(sub, topic) == [str(n) for n in range(COUNT)]
    finally:
        sub.close()


def test_a_disconnect_with_messages_in_our_queue_loses_and_repeats_nothing(
    broker: Mosquitto,
) -> None:
    """Readings taken back (in paho or still in our queue) are not sent by the port again;
    the owner replays them. A status behind them, not taken back, is sent once after the
    reconnect, behind what paho still held."""
    readings, status = "window/readings", "window/status"
    sub = Subscriber(broker.port, [readings, status])

    async def scenario() -> list[int]:
        port = _port(broker, "disconnect")
        await port.connect()
        try:
            owned: dict[int, int] = {}  # id -> reading number, as the pipeline keeps them
            taken: list[int] = []

            def take_back(_reason: str) -> None:
                unacked = [mid for mid in owned if port.unacked(mid)]
                taken.extend(owned[mid] for mid in unacked)
                port.take_back(unacked)

            port.on_disconnected = take_back
            for n in range(WINDOW):
                owned[port.publish(readings, str(n), 1, False)] = n
            for _ in range(20):
                await asyncio.sleep(0.001)  # some are written and acknowledged
            for n in range(WINDOW, COUNT):
                owned[port.publish(readings, str(n), 1, False)] = n
            port.publish(status, "online", 1, False)
            # the drop finds more waiting than paho holds: in the port's own queue
            assert port.pending_acks - len(port._client._out_messages) > WINDOW
            port.abort("test: link dropped")
            assert taken == sorted(taken)
            assert port.pending_acks == 1  # the status only
            await port.connect()
            for n in taken:  # the owner's replay
                port.publish(readings, f"replay {n}", 1, False)
            assert await port.wait_acked(20)
            return taken
        finally:
            await port.disconnect()

    try:
        taken = asyncio.run(scenario())
        wait_until(lambda: sub.on(status), 10, f"the status on {status}")
        replays = [f"replay {n}" for n in taken]
        wait_until(
            lambda: _payloads(sub, readings)[-len(replays) :] == replays,
            10,
            "the replayed readings",
        )
        got = _payloads(sub, readings)
        originals = [p for p in got if not p.startswith("replay")]
        # what reached the broker before the drop arrived once, in order; paho did not
        # send a taken-back reading again (it would repeat an original)
        assert originals == [str(n) for n in range(len(originals))]
        assert set(originals) | {str(n) for n in taken} == {str(n) for n in range(COUNT)}
        assert got[len(originals) :] == replays
        assert [m.text for m in sub.on(status)] == ["online"]
    finally:
        sub.close()


def test_a_qos0_batch_does_not_overtake_qos1_messages_the_window_holds_back(
    broker: Mosquitto,
) -> None:
    """publish_qos0 hands paho the packets at once only when nothing waits in our queue;
    behind a full window it waits its turn (on the code before, it reached the broker
    after the first window's worth, ahead of 2,000 older readings)."""
    topic = "window/mixed"
    sub = Subscriber(broker.port, topic)

    async def scenario() -> None:
        port = _port(broker, "mixed")
        await port.connect()
        try:
            for n in range(COUNT):
                port.publish(topic, str(n), 1, False)
            port.publish_qos0([(topic, "qos0 a", 0, False), (topic, "qos0 b", 0, False)])
            port.publish(topic, "last", 1, False)
            assert await port.wait_acked(20)
        finally:
            await port.disconnect()

    try:
        asyncio.run(scenario())
        wait_until(lambda: len(sub.on(topic)) >= COUNT + 3, 10, f"{COUNT + 3} messages")
        assert _payloads(sub, topic) == [str(n) for n in range(COUNT)] + [
            "qos0 a",
            "qos0 b",
            "last",
        ]
    finally:
        sub.close()


def test_qos1_publishes_queued_together_go_out_in_one_send_and_arrive_in_order(
    broker: Mosquitto,
) -> None:
    """paho sends each queued packet with its own system call; the port's client joins
    QoS 1 PUBLISH packets queued together (one request's readings) into one send. On the
    code before, 200 publishes took 200 sends."""
    topic, count = "window/joined", 200
    sub = Subscriber(broker.port, topic)
    sends: list[int] = []

    async def scenario() -> None:
        port = _port(broker, "joined")
        await port.connect()
        client = port._client
        real_send = client._sock_send

        def counting_send(data: bytes) -> int:
            sends.append(len(data))
            return real_send(data)

        client._sock_send = counting_send  # type: ignore[method-assign]
        try:
            for n in range(count):
                port.publish(topic, f"reading {n}", 1, False)
            assert await port.wait_acked(10)
        finally:
            await port.disconnect()

    try:
        asyncio.run(scenario())
        wait_until(lambda: len(sub.on(topic)) >= count, 10, f"{count} messages on {topic}")
        assert _payloads(sub, topic) == [f"reading {n}" for n in range(count)]
        assert 1 <= len(sends) <= 3, f"{len(sends)} sends for {count} publishes"  # + DISCONNECT
    finally:
        sub.close()


def test_plain_pubacks_are_handled_without_building_reason_codes_and_properties(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho builds a ReasonCode and Properties per PUBACK; a plain one (the packet id
    alone, Success, or with 0x10, no matching subscribers) is handled by the port's client
    without them, and every message is still acknowledged. Half the topics have a
    subscriber, half none. On the code before, 300 acks built 300 PUBACK Properties."""
    count = 300
    topics_heard = "window/pubacks/heard"
    sub = Subscriber(broker.port, topics_heard)
    built: list[int] = []
    init = Properties.__init__

    def counting_init(self: Properties, *args: Any, **kwargs: Any) -> None:
        if args and args[0] == PacketTypes.PUBACK:  # not the subscriber's (PUBLISH)
            built.append(1)
        init(self, *args, **kwargs)

    async def scenario() -> list[int]:
        port = _port(broker, "pubacks")
        acked: list[int] = []
        port.on_ack = acked.append
        await port.connect()
        try:
            topics = (topics_heard, "window/pubacks/unheard")
            mids = [port.publish(topics[n % 2], str(n), 1, False) for n in range(count)]
            monkeypatch.setattr(Properties, "__init__", counting_init)
            assert await port.wait_acked(10)
            monkeypatch.setattr(Properties, "__init__", init)
            assert sorted(acked) == sorted(mids)
            assert not any(port.unacked(mid) for mid in mids)
        finally:
            await port.disconnect()
        return acked

    try:
        assert len(asyncio.run(scenario())) == count
        assert len(built) < 10, f"{len(built)} Properties built for {count} PUBACKs"
        wait_until(lambda: len(sub.on(topics_heard)) >= count // 2, 10, "the heard half")
    finally:
        sub.close()
