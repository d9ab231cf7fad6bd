"""QoS 0 batches through the real paho session to a real Mosquitto: every message arrives,
in order, interleaved correctly with paho's own publishes, on both protocol versions, also
when a batch is far larger than the socket buffer (paho's partial writes)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from modbus_mqtt_bridge.config.model import MqttConfig
from modbus_mqtt_bridge.errors import MqttError
from modbus_mqtt_bridge.mqtt.port import Message, MqttPort
from tests.support.mosquitto import Mosquitto
from tests.support.ports import wait_until
from tests.support.subscriber import Subscriber


def _batch(site: str, b: int, n: int) -> list[tuple[str, str]]:
    return [(f"{site}/d/r{i % 7}", f'{{"b":{b},"i":{i},"pad":"{"x" * 150}"}}') for i in range(n)]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_batches_arrive_whole_and_in_order_between_single_publishes(
    broker: Mosquitto, protocol: str
) -> None:
    site = f"batch{protocol.replace('.', '')}"
    sub = Subscriber(broker.port, f"{site}/#")
    batches, per_batch = 3, 3_000  # ~0.6 MB a batch through a 4 KiB send buffer
    try:

        async def run() -> None:
            cfg = MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}", protocol=protocol)  # type: ignore[arg-type]
            port = MqttPort(cfg, f"test-batch-{site}")
            await port.connect(5)
            sock = port._client._sock
            assert sock is not None
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # partial sends
            try:
                for b in range(batches):
                    port.publish_qos0([(t, p, 0, False) for t, p in _batch(site, b, per_batch)])
                    port.publish(f"{site}/marker", str(b), qos=1, retain=False)
                assert await port.wait_acked(20)
            finally:
                await port.disconnect()

        asyncio.run(run())
        total = batches * (per_batch + 1)
        wait_until(lambda: len(sub.messages) >= total, 30, f"{total} messages")
        got = [(m.topic, m.text) for m in sub.messages]
        expected = []
        for b in range(batches):
            expected += _batch(site, b, per_batch)
            expected.append((f"{site}/marker", str(b)))
        assert got == expected
    finally:
        sub.close()


def test_a_batch_without_a_connection_is_refused(broker: Mosquitto) -> None:
    async def run() -> None:
        port = MqttPort(MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}"), "test-batch-down")
        with pytest.raises(MqttError, match="not currently connected"):
            port.publish_qos0([("a/b", "1", 0, False)])

    asyncio.run(run())


def test_the_session_socket_sends_without_waiting_for_acks(broker: Mosquitto) -> None:
    """Nagle's algorithm would hold a tick's second write until the broker ACKs the first,
    which Linux may delay by 40 ms: the port turns it off on every socket it opens,
    reconnects included."""

    async def run() -> None:
        port = MqttPort(MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}"), "test-nodelay")
        await port.connect(5)
        try:
            for _ in range(2):  # the first socket, then the one a reconnect opens
                sock = port._client._sock
                assert sock is not None
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
                port.abort("test: reconnect")
                await port.wait_disconnected()
                await port.connect(5)
        finally:
            await port.disconnect()

    asyncio.run(run())


def test_packets_read_together_are_all_handled_without_another_socket_event(
    broker: Mosquitto,
) -> None:
    """The port reads its socket a chunk at a time and paho handles a bounded number of
    packets per read call: a burst that then falls silent must still be delivered whole."""
    burst = 3_000

    async def run() -> int:
        got: list[str] = []
        port = MqttPort(MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}"), "test-burst-in")
        whole = asyncio.Event()

        def on_message(m: Message) -> None:
            got.append(m.topic)
            if len(got) >= burst and "burst/0" in got:
                whole.set()

        port.on_message = on_message
        await port.connect(5)
        try:
            port.subscribe("burst/#", qos=0)
            sender = MqttPort(MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}"), "test-burst-out")
            await sender.connect(5)
            loop = asyncio.get_running_loop()
            try:
                deadline = loop.time() + 5  # subscribed once a probe comes back
                while not got and loop.time() < deadline:
                    sender.publish_qos0([("burst/probe", "?", 0, False)])
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.05)  # a probe still on its way must not count
                got.clear()
                sender.publish_qos0([(f"burst/{i}", "x", 0, False) for i in range(burst)])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(whole.wait(), 10)
            finally:
                await sender.disconnect()
        finally:
            await port.disconnect()
        return len([t for t in got if t != "burst/probe"])

    assert asyncio.run(run()) == burst
