"""One RS-485 bus end to end: simulator on one end of a socat pty pair, the bridge on the other,
readings and statuses through a real Mosquitto. Also RTU framing over TCP (a gateway)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from modbus_mqtt_bridge.config.model import Config
from tests.support.bridge import BridgeThread
from tests.support.configs import config_from
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.pty import PtyPair
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber

INTERVAL_S = 0.2
TIMEOUT_S = 0.2
VALUES = {"m1": 101, "m2": 202, "m3": 303}
_sites = itertools.count()


def _yaml(site: str, mqtt_url: str, connection: str) -> str:
    devices = "\n".join(
        f"  - {{name: {name}, unit: {unit}, interval: {int(INTERVAL_S * 1000)}ms, registers: "
        f"[{{name: v, address: 40001, type: uint16}}, {{name: t, address: 40005, type: int16}}]}}"
        for unit, name in enumerate(VALUES, start=1)
    )
    return (
        f"site: {site}\nmqtt: {{url: '{mqtt_url}'}}\n"
        f"connections:\n  - {connection}\ndevices:\n{devices}\n"
    )


@dataclass
class Rig:
    config: Config
    sim: SimThread
    bridge: BridgeThread
    sub: Subscriber
    pty: PtyPair | None

    @property
    def site(self) -> str:
        return self.config.site

    def readings(self, device: str) -> list[tuple[datetime, int]]:
        return [
            (datetime.fromisoformat(m.json()["ts"]), m.json()["value"])
            for m in self.sub.on(f"{self.site}/{device}/v")
        ]

    def frame_errors(self, kind: str) -> float:
        registry = self.bridge.bridge.metrics.registry
        labels = {"connection": "bus", "kind": kind}
        return registry.get_sample_value("modbus_bridge_frame_errors_total", labels) or 0.0

    def statuses(self, device: str) -> list[str]:
        return [m.text for m in self.sub.on(f"{self.site}/{device}/status")]


def _start(config: Config, subscriber: Subscriber, pty: PtyPair | None) -> Iterator[Rig]:
    serial = {"bus": str(pty.b)} if pty else {}
    sim = SimThread(config, serial=serial).start()
    for name, value in VALUES.items():
        sim.set_value(name, "v", value)
        sim.set_value(name, "t", -value)
    sim.call(lambda: setattr(sim.sim, "line_log", []))
    rig = Rig(config, sim, BridgeThread(config).start(), subscriber, pty)
    try:
        yield rig
    finally:
        rig.bridge.stop()
        rig.sim.stop()  # a test may have replaced it


@pytest.fixture
def rtu(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> Iterator[Rig]:
    (tmp_path / "line").mkdir()
    pty = PtyPair(tmp_path / "line").plug()
    conn = f"{{name: bus, type: rtu, port: {pty.a}, baudrate: 19200, timeout: {TIMEOUT_S}}}"
    config = config_from(tmp_path, _yaml(f"rtu{next(_sites)}", broker.url, conn))
    try:
        yield from _start(config, subscriber, pty)
    finally:
        pty.close()


def _wait_readings(rig: Rig, count: int, timeout: float = 10) -> None:
    for device in VALUES:
        wait_until(lambda d=device: len(rig.readings(d)) >= count, timeout, f"{device} readings")


def _gaps(stamps: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]


def test_three_units_on_one_bus_decode_and_never_interleave(rtu: Rig) -> None:
    _wait_readings(rtu, 15)
    for device, value in VALUES.items():
        assert {v for _, v in rtu.readings(device)} == {value}
        temperatures = {m.json()["value"] for m in rtu.sub.on(f"{rtu.site}/{device}/t")}
        assert temperatures == {-value}
    log = rtu.sim.call(lambda: list(rtu.sim.sim.line_log or []))
    _assert_request_answer_pairs(log)
    assert all(rtu.frame_errors(k) == 0 for k in ("crc", "partial", "garbage", "late"))


def _assert_request_answer_pairs(log: list[tuple[str, bool, bytes]]) -> None:
    """Every answer follows its own request: the bridge never sends while one is pending."""
    events: list[tuple[bool, bytes]] = []
    for _, sending, data in log:
        if events and not sending and not events[-1][0]:
            events[-1] = (False, data)  # the server's receive buffer growing: one request
        else:
            events.append((sending, data))
    answers = [i for i, (sending, _) in enumerate(events) if sending]
    assert len(answers) >= 45  # 15 ticks x 3 units, one merged read each
    for i in answers:
        assert i > 0 and not events[i - 1][0], "two answers without a request between"
        assert events[i][1][0] == events[i - 1][1][0], "answer from another unit"


def test_silent_unit_goes_offline_and_neighbours_keep_their_schedule(rtu: Rig) -> None:
    rtu.sub.wait_payload(f"{rtu.site}/m3/status", "online")
    rtu.sim.call(lambda: setattr(rtu.sim.sim.unit("m3"), "silent", True))
    rtu.sub.wait_payload(f"{rtu.site}/m3/status", "offline", timeout=5)
    before = {d: len(rtu.readings(d)) for d in ("m1", "m2")}
    # Three seconds: the silent unit is retried at about 0.75, 1.5, 3 s (backoff).
    wait_until(lambda: len(rtu.readings("m1")) >= before["m1"] + 15, 10, "m1 readings")
    for device in ("m1", "m2"):
        stamps = [ts for ts, _ in rtu.readings(device)[before[device] :]]
        gaps = _gaps(stamps)
        # One retry of the silent unit may delay a tick by its timeout, never more.
        assert max(gaps) <= INTERVAL_S + TIMEOUT_S + 0.15, gaps
        assert sum(gaps) / len(gaps) == pytest.approx(INTERVAL_S, abs=0.03)
    assert "offline" not in rtu.statuses("m1") + rtu.statuses("m2")
    rtu.sim.call(lambda: setattr(rtu.sim.sim.unit("m3"), "silent", False))
    wait_until(lambda: rtu.statuses("m3")[-1:] == ["online"], 10, "m3 back online")


def test_line_noise_is_counted_and_recovered_without_going_offline(rtu: Rig) -> None:
    _wait_readings(rtu, 3)
    sim = rtu.sim.sim

    def inject() -> None:
        sim.unit("m1").faults.append("garbage")
        sim.unit("m2").faults.append("crc")
        sim.unit("m3").faults.append("partial")

    rtu.sim.call(inject)
    for kind in ("garbage", "crc", "partial"):
        wait_until(lambda k=kind: rtu.frame_errors(k) >= 1, 10, f"a {kind} frame counted")
    counts = {d: len(rtu.readings(d)) for d in VALUES}
    _wait_readings(rtu, max(counts.values()) + 5)
    for device, value in VALUES.items():
        assert {v for _, v in rtu.readings(device)} == {value}  # nothing mangled got through
        assert "offline" not in rtu.statuses(device)  # noise was retried, not blamed


def test_unplugged_line_is_reopened_when_it_comes_back(rtu: Rig) -> None:
    _wait_readings(rtu, 2)
    assert rtu.pty is not None
    rtu.pty.unplug()
    for device in VALUES:
        rtu.sub.wait_payload(f"{rtu.site}/{device}/status", "offline", timeout=5)
    rtu.pty.plug()
    # socat took the simulator's end away too; a real bus's slaves would just be there.
    rtu.sim.stop()
    rtu.sim = SimThread(rtu.config, serial={"bus": str(rtu.pty.b)}).start()
    for name, value in VALUES.items():
        rtu.sim.set_value(name, "v", value)
    for device in VALUES:
        wait_until(lambda d=device: rtu.statuses(d)[-1:] == ["online"], 15, f"{device} back")
    counts = {d: len(rtu.readings(d)) for d in VALUES}
    _wait_readings(rtu, max(counts.values()) + 3)


@pytest.fixture
def rtu_over_tcp(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> Iterator[Rig]:
    port = free_port()
    conn = f"{{name: bus, type: rtu-over-tcp, host: 127.0.0.1, port: {port}, timeout: 0.5}}"
    config = config_from(tmp_path, _yaml(f"rtutcp{next(_sites)}", broker.url, conn))
    yield from _start(config, subscriber, None)


def test_rtu_frames_over_tcp(rtu_over_tcp: Rig) -> None:
    rig = rtu_over_tcp
    _wait_readings(rig, 5)
    rig.sim.call(lambda: rig.sim.sim.unit("m2").faults.append("crc"))
    wait_until(lambda: rig.frame_errors("crc") >= 1, 10, "a crc error counted over tcp")
    counts = {d: len(rig.readings(d)) for d in VALUES}
    _wait_readings(rig, max(counts.values()) + 3)
    for device, value in VALUES.items():
        assert {v for _, v in rig.readings(device)} == {value}
    assert "offline" not in rig.statuses("m2")
