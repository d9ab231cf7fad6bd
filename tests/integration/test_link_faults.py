"""The publish path under real link faults: real paho, real Mosquitto, the fault proxy between.

Every scenario reads two registers every 250 ms and checks, on a subscriber with its own
persistent session on the broker (not behind the proxy), that no reading is missing (no
gap in the read times) and that each topic's order is kept (QoS 1 may deliver a reading
twice after a reconnect; the first deliveries must be in order).

On the main this issue started from (9b986da) all but the broker-restart-during-replay
scenario fail: readings lost at a stop and at a reload during an outage, and no fourth
connection after three hang-ups right after CONNACK.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.load import load_config
from tests.support.bridge import BridgeProcess, BridgeThread
from tests.support.configs import one_connection_yaml, write_config
from tests.support.faultproxy import FaultProxy
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber

INTERVAL_S = 0.25
MAX_GAP_S = 1.0  # a poll may be late on a loaded box; a lost reading leaves >= 3 s
TOPICS = ("lf/meter/a", "lf/meter/b")


class Rig:
    """Simulator, broker behind a fault proxy, a persistent subscriber, a config file."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, *, keepalive: str) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.proxy = FaultProxy(broker.port).start()
        self.path = write_config(
            tmp_path,
            one_connection_yaml(
                site="lf",
                mqtt_url=f"mqtt://127.0.0.1:{self.proxy.port}",
                modbus_port=free_port(),
                mqtt=f"qos: 1, retain: false, keepalive: {keepalive}",
                extra=f'buffer: {{path: "{tmp_path / "buffer.db"}"}}',
                devices=f"""
                - name: meter
                  connection: lan
                  interval: {int(INTERVAL_S * 1000)}ms
                  registers:
                    - {{name: a, address: 40001, type: uint16}}
                    - {{name: b, address: 40002, type: uint16}}
                """,
            ),
        )
        self.config = load_config(self.path, env={})
        self.sim = SimThread(self.config).start()
        self.subscriber = Subscriber(broker.port, "lf/meter/+", persistent_id=f"lf-{id(self)}")

    def process(self) -> BridgeProcess:
        return BridgeProcess("run", "-c", str(self.path), cwd=self.tmp_path)

    def start(self) -> tuple[BridgeProcess, float]:
        """A bridge process and when it began to poll (the time on its start line). Not the
        spawn: start-up takes 0.4-2 s on a loaded machine, with nothing read yet; counted
        from the spawn it showed as readings lost at the window's start (main and per-request
        publish alike, under load)."""
        before = len(self._start_lines())

        def started() -> list[str]:
            return self._start_lines()[before:]  # this process's start line, once written

        proc = self.process()
        try:
            lines = wait_until(started, 30, "the bridge's start line")
        except BaseException:
            proc.close()
            raise
        stamp = lines[0].split(" INFO ", 1)[0]
        return proc, datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()

    def _start_lines(self) -> list[str]:
        log = self.tmp_path / "bridge.log"  # every process of the rig appends to it
        text = log.read_text(errors="replace") if log.exists() else ""
        return [line for line in text.splitlines() if "bridge lf: " in line]

    def flowing(self, after: float, timeout: float = 30) -> None:
        """Wait for a reading read after `after` (unix time) on every topic."""
        for topic in TOPICS:
            wait_until(
                lambda t=topic: any(m.ts > after for m in self.subscriber.on(t)),
                timeout,
                f"a reading on {topic} read after {after:.1f}",
            )

    def blackhole_until_noticed(self) -> None:
        """The route dies silently; wait until the bridge drops the dead link itself."""
        before = self.proxy.connections
        self.proxy.blackhole()
        wait_until(lambda: _noticed(self.proxy, before), 40, "the bridge to notice")

    def steady(self) -> None:
        """Readings flow live: the first ones, read before the connection, are replayed."""
        self.flowing(after=time.time() + 1)

    def assert_nothing_lost(self, since: float, until: float) -> None:
        for topic in TOPICS:
            stamps = [m.ts for m in self.subscriber.on(topic)]
            first_seen = list(dict.fromkeys(stamps))
            assert first_seen == sorted(first_seen), f"{topic}: out of order"
            window = [s for s in first_seen if since <= s <= until]
            # the window's edges count: a loss at its end is a gap up to `until`
            gaps = [(b - a, a) for a, b in itertools.pairwise([since, *window, until])]
            worst = max(gaps, default=(0.0, 0.0))
            assert worst[0] < MAX_GAP_S, (
                f"{topic}: readings lost: {worst[0]:.2f}s without one after {worst[1]:.2f}"
                f" ({len(window)} readings between {since:.2f} and {until:.2f})"
            )

    def close(self) -> None:
        self.subscriber.close()
        self.sim.stop()
        self.proxy.close()


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, broker, keepalive="60s")  # neither paho nor the ack bound notices
    yield r
    r.close()


@pytest.fixture
def quick_rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, broker, keepalive="5s")  # the dead link is noticed within ~5-10 s
    yield r
    r.close()


def _noticed(proxy: FaultProxy, before: int) -> bool:
    """The bridge gave up its connection: it is trying a new one."""
    return proxy.connections > before


def test_blackholed_link_then_sigterm_then_restart_loses_nothing(rig: Rig) -> None:
    proc, started = rig.start()
    try:
        rig.steady()
        rig.proxy.blackhole()
        time.sleep(3)  # the outage itself: paho holds every reading, unacknowledged
        stopped = time.time()  # polling ends here; the stop itself takes a few seconds
        assert proc.terminate() == 0, proc.tail()
        assert "Traceback" not in proc.output()
        rig.proxy.pass_through()
    finally:
        proc.close()
    again = rig.process()
    try:
        rig.flowing(after=time.time() + 1)
        assert again.terminate() == 0, again.tail()
    finally:
        again.close()
    rig.assert_nothing_lost(since=started, until=stopped - 0.5)


def test_blackhole_that_recovers_after_the_bridge_noticed(quick_rig: Rig) -> None:
    """What paho held when the dead link was noticed is on disk from then on: even a
    kill -9 during the outage loses none of it, and the order survives the recovery."""
    rig = quick_rig
    proc, started = rig.start()
    try:
        rig.steady()
        rig.blackhole_until_noticed()
        time.sleep(1)  # a little more outage after the bridge noticed
        killed = time.time()
        proc.kill()
    finally:
        proc.close()
    again, restarted = rig.start()
    try:
        time.sleep(2)  # still blackholed: the new bridge buffers too
        rig.proxy.pass_through()
        recovered = time.time()
        rig.flowing(after=recovered + 1, timeout=60)
        assert again.terminate() == 0, again.tail()
    finally:
        again.close()
    rig.assert_nothing_lost(since=started, until=killed - 0.5)
    rig.assert_nothing_lost(since=restarted, until=recovered + 1)


def test_broker_hanging_up_after_connack_three_times(rig: Rig) -> None:
    rig.proxy.close_after_first_reply(times=3)
    bridge = BridgeThread(rig.config).start()
    try:
        started = time.time()
        wait_until(lambda: rig.proxy.connections >= 4, 30, "the bridge to try a fourth time")
        rig.flowing(after=started, timeout=30)
        assert bridge.runner.call(lambda: bridge.bridge.session.connected)
    finally:
        bridge.stop()


def test_broker_restarted_during_replay(tmp_path: Path, own_broker: Mosquitto) -> None:
    rig = Rig(tmp_path, own_broker, keepalive="60s")
    bridge = BridgeThread(rig.config).start()
    try:
        started = time.time()
        rig.steady()
        rig.proxy.reset()  # broker unreachable: the readings go to the buffer
        outage = time.time()
        time.sleep(5)  # the outage itself
        back = time.time()
        rig.proxy.delay(1.0)  # slow link: replayed rows are on the way for a while
        wait_until(
            lambda: any(outage < m.ts < back for m in rig.subscriber.on(TOPICS[0])),
            60,
            "the replay to reach the broker",
        )
        own_broker.restart()  # in the middle of the replay: its PUBACKs are still on the way
        rig.flowing(after=time.time() + 1, timeout=60)
        ended = time.time()
        rig.proxy.pass_through()  # over a 2 s round trip some rows are always in flight
        wait_until(
            lambda: bridge.runner.call(lambda: len(bridge.bridge.pipeline.buffer)) == 0,
            30,
            "an empty buffer",
        )
    finally:
        bridge.stop()
        rig.close()
    rig.assert_nothing_lost(since=started, until=ended)


def test_sighup_during_an_outage_keeps_what_paho_held(quick_rig: Rig) -> None:
    rig = quick_rig
    proc, started = rig.start()
    try:
        rig.steady()
        rig.blackhole_until_noticed()
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in proc.output(), 30, "the reload")
        rig.proxy.pass_through()
        recovered = time.time()
        rig.flowing(after=recovered + 1, timeout=60)
        assert proc.terminate() == 0, proc.tail()
        assert "Traceback" not in proc.output()
    finally:
        proc.close()
    rig.assert_nothing_lost(since=started, until=recovered)
