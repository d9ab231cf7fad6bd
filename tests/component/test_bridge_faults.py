"""The whole bridge on fake ports and virtual time: fault scenarios at full speed, no sleeps.

The fakes (tests/component/fakes.py) behave as paho and a Modbus device do where the bridge
can see it; the real paho and the real link are tested in tests/integration/ with the
fault proxy. Every reading's value is a counter, so a topic's order is its values' order.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import pytest

from modbus_mqtt_bridge.bridge.service import Bridge, run_until_signalled
from modbus_mqtt_bridge.config.load import load_config
from modbus_mqtt_bridge.config.model import Config, Connection
from modbus_mqtt_bridge.errors import MqttError, StorageError
from modbus_mqtt_bridge.mqtt.buffer import Buffer, DiskBuffer
from modbus_mqtt_bridge.mqtt.port import Will
from modbus_mqtt_bridge.mqtt.session import Session
from modbus_mqtt_bridge.observe.metrics import BridgeMetrics
from tests.component.clock import run_virtual
from tests.component.fakes import FakeBroker, FakeModbusPort, FakeMqttPort
from tests.support.configs import write_config

A, B = "comp/meter/a", "comp/pump/a"


def _config(tmp_path: Path, buffer: bool = True) -> Config:
    path = write_config(
        tmp_path,
        f"""
        site: comp
        mqtt: {{url: "mqtt://127.0.0.1:1", qos: 1, retain: false, keepalive: 10s}}
        {f'buffer: {{path: "{tmp_path / "buffer.db"}"}}' if buffer else ""}
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: 1502}}
          - {{name: bus, type: tcp, host: 127.0.0.1, port: 1503}}
        devices:
          - name: meter
            connection: lan
            interval: 1s
            registers: [{{name: a, address: 40001, type: uint16}}]
          - name: pump
            connection: bus
            interval: 1s
            registers: [{{name: a, address: 40001, type: uint16}}]
        """,
    )
    return load_config(path, env={})


class Rig:
    """One bridge generation on fake ports; `run(scenario)` drives it in virtual time."""

    def __init__(self, config: Config, broker: FakeBroker, buffer: Buffer | None = None) -> None:
        self.config = config
        self.broker = broker
        self.mqtt = FakeMqttPort(broker, config.mqtt)
        self.modbus: dict[str, FakeModbusPort] = {}
        self.metrics = BridgeMetrics()
        self.bridge = Bridge(
            config,
            self.metrics,
            mqtt_port=self.mqtt,
            modbus_port=self._modbus,  # type: ignore[arg-type]
            buffer=buffer,
        )

    def _modbus(self, conn: Connection) -> FakeModbusPort:
        self.modbus[conn.name] = FakeModbusPort(conn)
        return self.modbus[conn.name]

    def run(self, scenario: Callable[[Rig], Awaitable[None]]) -> None:
        async def main() -> None:
            stop = asyncio.Event()
            running = asyncio.create_task(self.bridge.run(stop))
            try:
                await scenario(self)
            finally:
                stop.set()
                await running

        run_virtual(main)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def values(payloads: list[str]) -> list[int]:
    return [int(json.loads(p)["value"]) for p in payloads]


def assert_complete(got: list[int]) -> None:
    """Every counter value once, in order: nothing lost, nothing twice."""
    assert got == list(range(got[0], got[0] + len(got))), got


def test_unacked_readings_at_a_stop_go_to_disk_and_are_replayed_once(tmp_path: Path) -> None:
    config = _config(tmp_path)
    broker = FakeBroker()

    async def blackholed_then_stop(rig: Rig) -> None:
        await asyncio.sleep(3.5)
        broker.blackhole = True  # the route dies; TCP notices nothing for a while
        await asyncio.sleep(3)

    first = Rig(config, broker)
    first.run(blackholed_then_stop)
    before = values(broker.on(A))
    kept = sqlite3.connect(tmp_path / "buffer.db").execute("SELECT count(*) FROM readings")
    assert kept.fetchone()[0] >= 2 * 3  # both devices' readings of the outage

    broker.blackhole = False

    async def run_a_while(rig: Rig) -> None:
        await asyncio.sleep(3)

    second = Rig(config, broker)
    second.run(run_a_while)
    after = values(broker.on(A))[len(before) :]
    # the first generation's unacked readings, then the second's own (its counter restarts)
    replayed = after[: after.index(1)] if 1 in after else after
    assert_complete(before + replayed)
    assert len(replayed) >= 3


def test_a_lost_link_hands_paho_s_unacked_readings_to_the_buffer(tmp_path: Path) -> None:
    broker = FakeBroker()

    async def outage(rig: Rig) -> None:
        await asyncio.sleep(3.5)
        broker.blackhole = True
        await asyncio.sleep(8)  # the session drops the silent link after 5 s (keepalive / 2)
        assert not rig.bridge.session.connected
        assert rig.bridge.pipeline.waiting >= 2 * 8  # taken back from paho, on disk
        assert rig.mqtt.pending_acks == 0  # paho will not re-send them as well
        broker.blackhole = False
        await asyncio.sleep(30)  # reconnect (backoff) and replay

    rig = Rig(_config(tmp_path), broker)
    rig.run(outage)
    assert_complete(values(broker.on(A)))
    assert_complete(values(broker.on(B)))
    assert rig.bridge.pipeline.waiting == 0


def test_the_silent_link_is_dropped_within_the_ack_bound(tmp_path: Path) -> None:
    broker = FakeBroker()
    seen: dict[str, float] = {}

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        broker.blackhole = True
        seen["from"] = asyncio.get_running_loop().time()
        await rig.mqtt.wait_disconnected()
        assert not rig.bridge.session.connected
        seen["noticed"] = asyncio.get_running_loop().time()
        assert rig.metric("modbus_bridge_broker_connected") == 0

    Rig(_config(tmp_path), broker).run(scenario)
    # the first unacked publish comes within a poll interval, the check runs every second
    assert 5.0 <= seen["noticed"] - seen["from"] <= 5.0 + 1.0 + 1.0


def test_an_unexpected_worker_error_restarts_that_worker_only(tmp_path: Path) -> None:
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        rig.modbus["lan"].explode = [RuntimeError("a bug"), KeyError("another")]
        await asyncio.sleep(20)

    rig = Rig(_config(tmp_path), broker)
    rig.run(scenario)
    assert rig.metric("modbus_bridge_worker_restarts_total", connection="lan") == 2
    assert rig.metric("modbus_bridge_worker_restarts_total", connection="bus") == 0
    pump = values(broker.on(B))
    assert_complete(pump)
    assert len(pump) >= 21  # the other worker never paused
    meter = values(broker.on(A))
    assert_complete(meter)
    assert len(meter) >= 21 - 1 - 2 - 4  # back after 1 s + ~2 s of backoff


def test_a_bug_in_a_devices_later_request_loses_none_of_its_earlier_readings(
    tmp_path: Path,
) -> None:
    """A device read in two requests; a bug (not a Modbus error) ends a tick between them.
    What the first request read is published, its tick's device payload too, then the
    worker restarts. Each read takes the counter's next value, so a reading read and never
    published shows as a value missing from both topics."""
    path = write_config(
        tmp_path,
        """
        site: comp
        mqtt: {url: "mqtt://127.0.0.1:1", qos: 1, retain: false, device_payload: true}
        connections: [{name: lan, type: tcp, host: 127.0.0.1, port: 1502}]
        devices:
          - name: meter
            interval: 1s
            max_gap: 0
            registers:
              - {name: a, address: 40001, type: uint16}
              - {name: b, address: 40101, type: uint16}
        """,
    )
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)  # ticks at 0, 1, 2 s: online since the first
        port = rig.modbus["lan"]
        read = port.read

        async def bug_after_a(table: object, address: int, count: int, unit_id: int) -> list[int]:
            if address == 100 and not exploded:  # b, the tick's second request
                exploded.append(address)
                raise RuntimeError("a bug between a device's requests")
            return await read(table, address, count, unit_id)  # type: ignore[arg-type]

        exploded: list[int] = []
        port.read = bug_after_a  # type: ignore[method-assign]
        await asyncio.sleep(6)

    rig = Rig(load_config(path, env={}), broker)
    rig.run(scenario)
    assert rig.metric("modbus_bridge_worker_restarts_total", connection="lan") == 1
    a, b = values(broker.on("comp/meter/a")), values(broker.on("comp/meter/b"))
    assert_complete(sorted(a + b))  # every value read was published
    ticks = [json.loads(p) for p in broker.on("comp/meter")]
    assert [t["a"] for t in ticks] == a  # one device payload per tick, the cut one too
    assert len(a) == len(b) + 1


def test_a_failing_hand_off_is_counted_and_polling_goes_on(tmp_path: Path) -> None:
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        pipeline = rig.bridge.pipeline
        real = pipeline.on_readings
        calls = {"n": 0}

        def broken(*args: object) -> None:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise ValueError("bug in the pipeline")
            real(*args)  # type: ignore[arg-type]

        rig.bridge.board.inner = type(
            "S",
            (),
            {
                "on_readings": staticmethod(broken),
                "on_tick_end": pipeline.on_tick_end,
                "on_status": pipeline.on_status,
            },
        )()
        await asyncio.sleep(5)

    rig = Rig(_config(tmp_path), broker)
    rig.run(scenario)
    errors = sum(
        rig.metric("modbus_bridge_handoff_errors_total", connection=c) for c in ("lan", "bus")
    )
    assert errors == 2
    assert rig.metric("modbus_bridge_worker_restarts_total", connection="lan") == 0
    assert len(broker.on(A)) >= 6


def test_a_locked_buffer_loses_nothing(tmp_path: Path) -> None:
    broker = FakeBroker(up=False)  # everything goes through the buffer
    lock = sqlite3.connect(tmp_path / "buffer.db", isolation_level=None)

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        lock.execute("BEGIN EXCLUSIVE")  # another process holds the database
        await asyncio.sleep(10)
        assert rig.metric("modbus_bridge_buffer_errors_total") >= 2
        assert rig.bridge.pipeline.waiting >= 2 * 12  # held in memory meanwhile
        lock.execute("ROLLBACK")
        await asyncio.sleep(40)  # the next retry writes them
        broker.up = True
        await asyncio.sleep(60)

    rig = Rig(_config(tmp_path), broker)
    rig.run(scenario)
    lock.close()
    assert_complete(values(broker.on(A)))
    assert_complete(values(broker.on(B)))
    assert rig.bridge.pipeline.buffer.dropped == 0


class DeletesRefused(DiskBuffer):
    """A disk that takes inserts but refuses deletes (a lock held, a remount) on demand."""

    refuse = False
    attempts = 0

    def remove(self, ids: Iterable[int]) -> None:
        self.attempts += 1
        if self.refuse:
            raise StorageError("buffer.path: database is locked")
        super().remove(ids)


@pytest.mark.timeout(30)  # the old drain spun on the loop forever, re-sending
def test_acked_rows_the_buffer_will_not_delete_are_not_sent_again(tmp_path: Path) -> None:
    """The replay was acked but the delete failed: the drain backs off, it does not peek
    the same rows again and again (it re-sent the whole buffer in a loop)."""
    config = _config(tmp_path)
    buffer = DeletesRefused(str(tmp_path / "buffer.db"), 1000)
    broker = FakeBroker(up=False)
    tries: list[int] = []

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(5.5)  # an outage: everything goes to the buffer
        buffer.refuse = True
        broker.up = True
        await asyncio.sleep(30)
        tries.append(buffer.attempts)
        buffer.refuse = False
        await asyncio.sleep(60)

    Rig(config, broker, buffer).run(scenario)
    for topic in (A, B):
        got = values(broker.on(topic))
        assert len(got) == len(set(got)), f"{topic} sent twice: {got}"
        assert_complete(got)
    assert tries[0] < 40  # retried with a backoff, not on every PUBACK or loop turn


def test_a_clean_stop_says_each_device_offline_then_the_bridge(tmp_path: Path) -> None:
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)

    Rig(_config(tmp_path), broker).run(scenario)
    statuses = [(t, p) for t, p, retain in broker.delivered if t.endswith("/status") and retain]
    assert statuses[-3:] in (
        [
            ("comp/meter/status", "offline"),
            ("comp/pump/status", "offline"),
            ("comp/bridge/status", "offline"),
        ],
    )


def test_a_stop_with_paho_refusing_publishes_still_closes_the_buffer(tmp_path: Path) -> None:
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        rig.mqtt.publish_error = MqttError("publish failed: queue full")

    rig = Rig(_config(tmp_path), broker)
    rig.run(scenario)  # no exception out of the stop
    buffer = rig.bridge.pipeline.buffer
    assert isinstance(buffer, DiskBuffer)
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        buffer._db.execute("SELECT 1")


def test_sighup_lets_the_previous_bridge_be_collected(tmp_path: Path) -> None:
    config = _config(tmp_path, buffer=False)
    broker = FakeBroker()
    made: list[list[weakref.ref[object]]] = []
    collected: list[bool] = []

    def make(cfg: Config) -> Bridge:
        bridge = Rig(cfg, broker).bridge
        # the parts, not only the Bridge: they hold each other (callbacks), so only the
        # cycle collector frees them, and never once they are frozen
        parts: list[object] = [bridge, bridge.session, bridge.pipeline, bridge.board]
        made.append([weakref.ref(part) for part in parts])
        return bridge

    def look() -> None:
        # no gc.collect() here: the bridge's own collection after the reload must free it
        collected.append(len(made) == 2 and all(part() is None for part in made[0]))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(3, os.kill, os.getpid(), signal.SIGHUP)
        loop.call_later(5, look)  # the second generation is running
        loop.call_later(6, os.kill, os.getpid(), signal.SIGTERM)
        await run_until_signalled(config, lambda: config, make_bridge=make)

    threshold = gc.get_threshold()
    try:
        run_virtual(main)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert len(made) == 2
    assert collected == [True]


def test_a_stop_that_loses_memory_only_readings_says_how_many(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """buffer.path ":memory:" (None here): a stop during an outage loses what the broker
    never acknowledged, and says so loudly, with the count (it used to end silently)."""
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        broker.blackhole = True
        await asyncio.sleep(3)

    rig = Rig(_config(tmp_path, buffer=False), broker)
    with caplog.at_level(logging.INFO, "modbus_mqtt_bridge"):
        rig.run(scenario)
    lost = [r for r in caplog.records if "kept in memory only" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR
    count = int(lost[0].getMessage().split()[0])
    assert count >= 2 * 3  # both devices' readings of the 3 s outage
    assert not any(
        "kept in the buffer for the next start" in r.getMessage() for r in caplog.records
    )


def test_a_stop_with_a_disk_buffer_says_the_readings_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = FakeBroker()

    async def scenario(rig: Rig) -> None:
        await asyncio.sleep(2.5)
        broker.blackhole = True
        await asyncio.sleep(3)

    with caplog.at_level(logging.INFO, "modbus_mqtt_bridge"):
        Rig(_config(tmp_path), broker).run(scenario)
    assert any("kept in the buffer for the next start" in r.getMessage() for r in caplog.records)
    assert not any("kept in memory only" in r.getMessage() for r in caplog.records)


def test_one_refused_publish_in_a_connect_callback_does_not_skip_the_others() -> None:
    """Paho's queue full during the announce: later callbacks (discovery, sd_notify) run."""
    broker = FakeBroker()
    port = FakeMqttPort(broker)
    session = Session(port, Will("comp/bridge/status", "online"), None)  # type: ignore[arg-type]
    ran: list[str] = []

    def refused() -> None:
        ran.append("statuses")
        raise MqttError("publish failed: queue full")

    session.on_connected(refused)
    session.on_connected(lambda: ran.append("discovery"))

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(session.run(stop))
        await asyncio.wait_for(session.connected_event.wait(), 5)
        stop.set()
        await running

    run_virtual(main)
    assert ran == ["statuses", "discovery"]
