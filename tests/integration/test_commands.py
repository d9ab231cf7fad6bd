"""Write commands end to end: Mosquitto -> bridge -> simulated Modbus slave -> result topic.

Each write is verified twice: in the slave's registers and on the result topic. Each
refusal must leave the slave untouched and the poller running. Waits are bounded; where
a test must show that something did *not* happen, it sends a later command through the
same path and waits for that one's answer, since answers come in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from modbus_mqtt_bridge.config.model import Config
from modbus_mqtt_bridge.config.types import Table
from modbus_mqtt_bridge.writes.check import Envelope
from modbus_mqtt_bridge.writes.parse import Command
from tests.support.bridge import BridgeThread
from tests.support.configs import config_from, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.sim import SimThread
from tests.support.subscriber import Received, Subscriber

SITE = "cmd"
WRITABLE = ("setpoint", "scaled", "pump", "mode", "flag")


def _yaml(mqtt_url: str, port: int, extra_devices: str = "", site: str = SITE) -> str:
    return f"""
        site: {site}
        mqtt: {{url: "{mqtt_url}", qos: 1, retain: false}}
        commands: {{max_age: 30s}}
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: {port}, timeout: 1}}
        devices:
          - name: plc
            connection: lan
            unit: 1
            interval: 200ms
            registers:
              - {{name: setpoint, address: 40001, type: float32, writable: true, min: 5, max: 30}}
              - {{name: scaled, address: 40003, type: int16, scale: 0.1, writable: true,
                  min: -20, max: 80}}
              - {{name: mode, address: 40004, type: uint16, writable: true}}
              - {{name: flag, address: 40005, type: bool, bit: 3, writable: true}}
              - {{name: pump, address: 00001, type: bool, writable: true}}
              - {{name: voltage, address: 30001, type: float32, unit: V}}
{extra_devices}
        """


@dataclass
class Rig:
    config: Config
    sim: SimThread
    bridge: BridgeThread
    sub: Subscriber

    def raw(self) -> dict[str, list[int]]:
        return self.sim.call(lambda: {n: self.sim.sim.read_raw("plc", n) for n in WRITABLE})

    def value(self, register: str) -> Any:
        return self.sim.call(lambda: self.sim.sim.value_of("plc", register))

    def command(self, topic: str, payload: bytes | str, **kw: Any) -> dict[str, Any]:
        """Publish a command and return the next answer on its result topic."""
        result = f"{topic}/result"
        before = len(self.sub.on(result))
        self.sub.publish(topic, payload, qos=1, **kw)
        return self.sub.wait_for(result, before + 1)[before].json()

    def metric(self, outcome: str, device: str = "plc") -> float:
        registry = self.bridge.bridge.metrics.registry
        labels = {"device": device, "outcome": outcome}
        return registry.get_sample_value("modbus_bridge_commands_total", labels) or 0.0

    def wait_polled(self) -> None:
        """The poller is still running: a fresh reading arrives."""
        before = len(self.sub.on(f"{SITE}/plc/voltage"))
        self.sub.wait_for(f"{SITE}/plc/voltage", before + 1, timeout=5)


def _ready(sub: Subscriber, site: str = SITE) -> None:
    """The bridge answers commands (its subscription is in place): probe until it does."""
    topic = f"{site}/plc/probe/set"

    def answered() -> bool:
        sub.publish(topic, b"1", qos=1)
        try:
            sub.wait_for(f"{topic}/result", timeout=0.5)
        except AssertionError:
            return False
        return True

    wait_until(answered, 15, "the bridge to answer commands", every=0)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[Rig]:
    config = config_from(tmp_path_factory.mktemp("cmd"), _yaml(broker.url, free_port()))
    sim = SimThread(config).start()
    for name, value in [("setpoint", 20.0), ("scaled", 10.0), ("mode", 1), ("pump", False)]:
        sim.set_value("plc", name, value)
    sub = Subscriber(broker.port, [f"{SITE}/#", "resp/#"])
    # A stale retained command, there before the bridge subscribes: it must never fire.
    sub.publish(f"{SITE}/plc/mode/set", b'{"value": 99, "id": "stale"}', qos=1, retain=True)
    bridge = BridgeThread(config).start()
    try:
        _ready(sub)
        yield Rig(config, sim, bridge, sub)
    finally:
        bridge.stop()
        sub.publish(f"{SITE}/plc/mode/set", b"", qos=1, retain=True)  # clear it
        sub.close()
        sim.stop()


# -- writes --------------------------------------------------------------------------


def test_float32_setpoint(rig: Rig) -> None:
    answer = rig.command(f"{SITE}/plc/setpoint/set", '{"value": 21.5, "id": "c-1"}')
    assert answer == {"id": "c-1", "ok": True, "value": 21.5, "readback": 21.5}
    assert rig.value("setpoint") == 21.5
    assert rig.sim.call(lambda: rig.sim.sim.read_raw("plc", "setpoint")) == [0x41AC, 0]
    # the new value is published at once (and by every later poll)
    rig.sub.wait_payload_match(f"{SITE}/plc/setpoint", lambda p: p["value"] == 21.5)


def test_int16_with_scale_bare_payload(rig: Rig) -> None:
    answer = rig.command(f"{SITE}/plc/scaled/set", "-12.5")
    assert answer == {"id": None, "ok": True, "value": -12.5, "readback": -12.5}
    assert rig.sim.call(lambda: rig.sim.sim.read_raw("plc", "scaled")) == [0x10000 - 125]


def test_coil_on_and_off(rig: Rig) -> None:
    assert rig.command(f"{SITE}/plc/pump/set", "ON")["ok"] is True
    assert rig.value("pump") is True
    answer = rig.command(f"{SITE}/plc/pump/set", '{"value": false, "id": 7}')
    assert answer == {"id": 7, "ok": True, "value": False, "readback": False}
    assert rig.value("pump") is False


def test_bit_of_register_keeps_the_other_bits(rig: Rig) -> None:
    holding = rig.sim.call(lambda: rig.sim.sim.unit("plc").tables[Table.HOLDING])
    rig.sim.call(lambda: holding.__setitem__(4, 0b1000_0001))  # bits 7 and 0 set, bit 3 clear
    answer = rig.command(f"{SITE}/plc/flag/set", "true")
    assert answer["ok"] is True and answer["readback"] is True
    assert rig.sim.call(lambda: rig.sim.sim.read_raw("plc", "flag")) == [0b1000_1001]


def test_device_level_write_of_several_registers(rig: Rig) -> None:
    topic = f"{SITE}/plc/set"
    payload = '{"setpoint": 12.25, "mode": 3, "pump": true, "id": "multi"}'
    answer = rig.command(topic, payload)
    assert answer["id"] == "multi" and answer["ok"] is True, answer
    assert answer["results"] == {
        "setpoint": {"ok": True, "value": 12.25, "readback": 12.25},
        "mode": {"ok": True, "value": 3, "readback": 3},
        "pump": {"ok": True, "value": True, "readback": True},
    }
    assert (rig.value("setpoint"), rig.value("mode"), rig.value("pump")) == (12.25, 3, True)
    for name, value in (("setpoint", 12.25), ("mode", 3), ("pump", True)):
        per_register = rig.sub.wait_for(f"{SITE}/plc/{name}/set/result")[-1].json()
        assert per_register == {"id": "multi", "ok": True, "value": value, "readback": value}


def test_mqtt5_response_topic_and_correlation_data(rig: Rig) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "resp/operator-1"
    props.CorrelationData = b"\x00corr-42"
    answer = rig.command(f"{SITE}/plc/mode/set", "42", properties=props)
    assert answer["ok"] is True
    response: Received = rig.sub.wait_for("resp/operator-1")[-1]
    assert response.json() == {"id": None, "ok": True, "value": 42, "readback": 42}
    assert response.properties.CorrelationData == b"\x00corr-42"
    assert rig.value("mode") == 42


def test_handle_is_the_entry_point_for_other_transports(rig: Rig) -> None:
    """What the HTTP write endpoint calls: a parsed command in, the result body out."""
    handler = rig.bridge.bridge.commands

    def run(command: Command) -> dict[str, Any]:
        coroutine = handler.handle("plc", "mode", command, Envelope(time.time()), "http")
        return asyncio.run_coroutine_threadsafe(coroutine, rig.bridge.runner.loop).result(10)

    assert run(Command((("mode", 12),), "h-1")) == {
        "id": "h-1",
        "ok": True,
        "value": 12,
        "readback": 12,
    }
    assert rig.value("mode") == 12
    rig.sub.wait_payload_match(f"{SITE}/plc/mode", lambda m: m["value"] == 12, timeout=5)
    refused = run(Command((("voltage", 1),), "h-2"))
    assert refused == {"id": "h-2", "ok": False, "error": "register 'voltage' is not writable"}


def test_a_failing_read_back_hand_off_still_answers_the_write(rig: Rig) -> None:
    """The write happened: a bug behind the sink must not swallow its result."""
    handler = rig.bridge.bridge.commands

    class Broken:
        def on_readings(self, *_: object) -> None:
            raise RuntimeError("board bug")

        def on_tick_end(self, *_: object) -> None:
            raise RuntimeError("board bug")

    sink, handler.sink = handler.sink, Broken()  # type: ignore[assignment]
    try:
        coroutine = handler.handle(
            "plc", "mode", Command((("mode", 13),), "h-3"), Envelope(time.time())
        )
        result = asyncio.run_coroutine_threadsafe(coroutine, rig.bridge.runner.loop).result(10)
    finally:
        handler.sink = sink
    assert result == {"id": "h-3", "ok": True, "value": 13, "readback": 13}
    assert rig.value("mode") == 13


# -- refusals ------------------------------------------------------------------------

REFUSALS = [
    ("voltage", b"230", "register 'voltage' is not writable"),
    ("nosuch", b"1", "unknown register 'nosuch' on device 'plc'"),
    ("setpoint", b"31", "31 is above max 30"),
    ("setpoint", b"NaN", "nan is not a finite number"),
    ("setpoint", b'{"value": NaN, "id": "n"}', "nan is not a finite number"),
    ("mode", b"70000", "out of range for uint16"),
    ("pump", b"21.5", "expected true/false, ON/OFF or 1/0, got 21.5"),
    ("setpoint", b"warm", "expected a number for float32, got 'warm'"),
    ("setpoint", b'{"value": 21.5, "ts": "2020-01-01T00:00:00Z"}', "old (ts)"),
    ("setpoint", b'{"value": 21.5', "invalid JSON"),
    ("setpoint", b"7" * 1_048_576, "payload of 1048576 bytes is over the limit of 4096 bytes"),
]


@pytest.mark.parametrize(("register", "payload", "error"), REFUSALS)
def test_refusals_leave_the_slave_untouched(
    rig: Rig, register: str, payload: bytes, error: str
) -> None:
    before = rig.raw()
    answer = rig.command(f"{SITE}/plc/{register}/set", payload)
    assert answer["ok"] is False
    assert error in answer["error"], answer
    assert rig.raw() == before
    rig.wait_polled()


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        ("plc/mode/set", '{"id": "c-13"}', 'missing "value"'),
        ("plc/mode/set", '{"id": "c-14", "value": 1, "ts": "yesterday"}', "not an ISO 8601"),
        ("plc/voltage/set", '{"id": "c-15", "value": 1}', "not writable"),
        ("plc/set", '{"id": "c-16"}', "no register to write"),
        ("ghost/set", '{"id": "c-17", "a": 1}', "unknown device"),
    ],
)
def test_a_refusal_echoes_the_commands_id(rig: Rig, topic: str, payload: str, error: str) -> None:
    answer = rig.command(f"{SITE}/{topic}", payload)
    assert answer["id"] == json.loads(payload)["id"] and answer["ok"] is False
    assert error in answer["error"]


def test_device_level_refusal_writes_nothing(rig: Rig) -> None:
    before = rig.raw()
    answer = rig.command(f"{SITE}/plc/set", '{"setpoint": 22, "voltage": 1, "id": "d-bad"}')
    assert answer == {"id": "d-bad", "ok": False, "error": "register 'voltage' is not writable"}
    assert rig.command(f"{SITE}/ghost/set", '{"a": 1}')["error"] == "unknown device 'ghost'"
    assert rig.raw() == before


def test_stale_retained_command_never_fires(rig: Rig) -> None:
    # The fixture left {"value": 99, "id": "stale"} retained before the bridge subscribed.
    assert rig.command(f"{SITE}/plc/mode/set", '{"value": 5, "id": "after"}')["ok"] is True
    assert [m.json().get("id") for m in rig.sub.on(f"{SITE}/plc/mode/set/result")].count(
        "stale"
    ) == 0
    assert rig.value("mode") == 5
    assert rig.metric("ignored") == 1


def test_outcomes_are_counted(rig: Rig) -> None:
    ok, refused = rig.metric("ok"), rig.metric("refused")
    rig.command(f"{SITE}/plc/mode/set", "6")
    rig.command(f"{SITE}/plc/mode/set", "-6")
    assert (rig.metric("ok"), rig.metric("refused")) == (ok + 1, refused + 1)


# -- expiry while waiting for the worker -----------------------------------------------

_DEAD_DEVICE = """
          - name: dead
            connection: lan
            unit: 2
            interval: 1s
            registers:
              - {name: out, address: 40001, type: uint16, writable: true}
"""


def test_mqtt5_expiry_is_enforced_while_waiting_and_timeouts_are_not_retried(
    tmp_path: Path, broker: Mosquitto
) -> None:
    site = "cmdx"  # its own site and client id: the module's bridge keeps running meanwhile
    config = config_from(tmp_path, _yaml(broker.url, free_port(), _DEAD_DEVICE, site))
    sim = SimThread(config).start()
    sim.set_value("plc", "setpoint", 20.0)
    sim.call(lambda: setattr(sim.sim.unit("dead"), "silent", True))
    sub = Subscriber(broker.port, [f"{site}/#"])
    bridge = BridgeThread(config).start()
    try:
        _ready(sub, site)
        # Two writes to the silent unit hold the worker for four timeouts (write, read-back) ...
        for n in (1, 2):
            sub.publish(f"{site}/dead/out/set", f'{{"value": {n}, "id": "slow"}}', qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = 2
        # ... so this command, valid for 2 s, expires in the queue and is never written.
        sub.publish(
            f"{site}/plc/setpoint/set", b'{"value": 25, "id": "late"}', qos=1, properties=props
        )
        late = sub.wait_for(f"{site}/plc/setpoint/set/result")[0].json()
        assert late["id"] == "late" and late["ok"] is False
        assert "expired" in late["error"]
        for message in sub.wait_for(f"{site}/dead/out/set/result", 2, timeout=15):
            slow = message.json()
            assert slow["id"] == "slow" and slow["ok"] is False
            assert "write not confirmed" in slow["error"] and "read-back failed" in slow["error"]
        assert sim.call(lambda: sim.sim.value_of("plc", "setpoint")) == 20.0
        assert sim.call(lambda: sim.sim.written) == {}
        metrics = bridge.bridge.metrics.registry
        labels = {"device": "plc", "outcome": "expired"}
        assert metrics.get_sample_value("modbus_bridge_commands_total", labels) == 1
    finally:
        bridge.stop()
        sub.close()
        sim.stop()


# -- the `write` command-line tool ------------------------------------------------------


REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the tests must not depend on the package being pip-installed.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_write_cli_uses_the_same_checks(tmp_path: Path) -> None:
    path = write_config(tmp_path, _yaml("mqtt://127.0.0.1:1", free_port()))
    sim = SimThread(config_from(tmp_path, path.read_text())).start()
    try:
        ok = _cli("write", "-c", str(path), "plc", "setpoint", "17.5", cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"id": None, "ok": True, "value": 17.5, "readback": 17.5}
        assert sim.call(lambda: sim.sim.value_of("plc", "setpoint")) == 17.5
        refused = _cli("write", "-c", str(path), "plc", "voltage", "1", cwd=tmp_path)
        assert refused.returncode == 2
        assert json.loads(refused.stdout)["error"] == "register 'voltage' is not writable"
    finally:
        sim.stop()
    failed = _cli("write", "-c", str(path), "plc", "mode", "3", cwd=tmp_path)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["ok"] is False and "Traceback" not in failed.stderr
