"""The floor: a bare paho-mqtt 2.x client publishing N same-size messages per second.

Run as its own process by bench/run.py, against the same broker as the bridge:

    floor.py --port P --mode thread  --ticks 10 --per-tick 10000 --batch 100 --size 160 [--qos 1]

`--qos 1`: the messages are QoS 1 and the floor waits for every PUBACK, as the bridge does,
with the bridge's in-flight limit (1,000): in `thread` mode paho's own
`max_inflight_messages` (the plain way: paho queues the excess and, on every PUBACK, walks
its out dict), in `thread-window` mode paho unlimited and the loop itself waiting while
1,000 are unacknowledged, so paho never queues (what the bridge's port does).

`thread`: paho's own network thread (`loop_start()`), the plain way to use paho.
`thread-window`: the same, keeping the QoS 1 in-flight window in the loop (see above).
`asyncio`: paho driven by an asyncio loop exactly as the bridge drives it (the package's
`MqttPort`: socket readers/writers on the loop, no thread, its `on_publish` callback set).
`asyncio-noack`: the same without paho's `on_publish` callback (diagnostic: what that
callback costs on QoS 0, where paho builds a ReasonCode and a Properties per message).
`asyncio-batch`: the bridge's QoS 0 fast path alone: each burst handed to paho as one
queued write (`MqttPort.publish_qos0`, mqtt/packets.py), against paho's publish per message.

Each tick (fixed rate, 1 s) publishes `per-tick` messages in bursts of `batch` (the bridge
publishes one device's readings per burst); topics `floor/dNNN/rNNNN`, the same length as
the bridge's. CPU is `time.process_time()` (every thread) from just before the first tick
until paho has written the last message to the socket (QoS 1: until the last PUBACK).
`--flat-out` (thread modes): no pacing, the ticks' messages back to back: `msgs_per_s` is
the loop's top rate (bench/ceiling.py, pinned to one core). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
INFLIGHT = 1000  # the bridge's in-flight limit (modbus_mqtt_bridge.mqtt.port.INFLIGHT)


def topics(per_tick: int, batch: int) -> list[list[str]]:
    names = [f"floor/d{m // batch + 1:03d}/r{m % batch + 1:04d}" for m in range(per_tick)]
    return [names[i : i + batch] for i in range(0, per_tick, batch)]


def run_thread(args: argparse.Namespace, bursts: list[list[str]], payload: str) -> dict[str, float]:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-floor-thread-{args.port}",
        protocol=paho.MQTTv5,
    )
    client.max_queued_messages_set(0)
    own_window = args.qos > 0 and args.mode == "thread-window"
    client.max_inflight_messages_set(0 if own_window else INFLIGHT)
    out = client._out_messages
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise SystemExit("floor: no CONNACK from the broker within 10 s")
        time.sleep(0.2)
        cpu0, wall0 = time.process_time(), time.monotonic()
        late = 0.0
        for k in range(args.ticks):
            due = wall0 + k
            delay = due - time.monotonic()
            if args.flat_out:
                pass  # the loop's top rate: every tick at once (bench/ceiling.py)
            elif delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay)
            for burst in bursts:
                for topic in burst:
                    while own_window and len(out) >= INFLIGHT:
                        time.sleep(0.0005)
                    client.publish(topic, payload, qos=args.qos, retain=False)
        while client._out_packet or client._out_messages:  # written (and acked) yet?
            time.sleep(0.001)
        cpu1, wall1 = time.process_time(), time.monotonic()
    finally:
        client.disconnect()
        client.loop_stop()
    return {"cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0, "max_late_s": late}


async def run_asyncio(
    args: argparse.Namespace, bursts: list[list[str]], payload: str
) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from modbus_mqtt_bridge.config.model import MqttConfig  # noqa: PLC0415
    from modbus_mqtt_bridge.mqtt.port import MqttPort  # noqa: PLC0415

    port = MqttPort(
        MqttConfig(url=f"mqtt://127.0.0.1:{args.port}", qos=args.qos, retain=False),
        f"bench-floor-asyncio-{args.port}",
    )
    if args.mode == "asyncio-noack":
        port._client.on_publish = None
    await port.connect()
    try:
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        cpu0, wall0 = time.process_time(), loop.time()
        late = 0.0
        for k in range(args.ticks):
            delay = wall0 + k - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            for burst in bursts:
                if args.mode == "asyncio-batch":  # the bridge's QoS 0 path (publish_qos0)
                    port.publish_qos0([(topic, payload, 0, False) for topic in burst])
                else:
                    for topic in burst:
                        port.publish(topic, payload, args.qos, False)
                await asyncio.sleep(0)  # the bridge yields between devices (awaiting Modbus)
        while port._client.want_write() or port.pending_acks:  # noqa: ASYNC110  (no event)
            await asyncio.sleep(0.001)
        cpu1, wall1 = time.process_time(), loop.time()
    finally:
        await port.disconnect()
    return {"cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0, "max_late_s": late}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    modes = ("thread", "thread-window", "asyncio", "asyncio-noack", "asyncio-batch")
    p.add_argument("--mode", choices=modes, default="thread")
    p.add_argument("--ticks", type=int, default=10)
    p.add_argument("--per-tick", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--qos", type=int, default=0, choices=(0, 1))
    p.add_argument("--flat-out", action="store_true", help="no pacing: the top rate (thread)")
    args = p.parse_args()
    bursts = topics(args.per_tick, args.batch)
    payload = ('{"value":' + "1" * max(0, args.size - 10) + "}")[: args.size]
    if args.mode.startswith("thread"):
        result = run_thread(args, bursts, payload)
    else:
        result = asyncio.run(run_asyncio(args, bursts, payload))
    published = args.ticks * args.per_tick
    result.update(
        published=published,
        qos=args.qos,
        cpu_us_per_msg=result["cpu_s"] / published * 1e6,
        msgs_per_s=published / result["wall_s"],
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
