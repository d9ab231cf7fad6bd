"""Fault injection with real parts: bad registers, bad slaves, buffer bounds, kill -9, SIGHUP."""

from __future__ import annotations

import itertools
import signal
import time
from dataclasses import replace
from pathlib import Path

from modbus_mqtt_bridge.config.load import load_config
from modbus_mqtt_bridge.config.types import Table
from tests.support.bad_slaves import BadSlave
from tests.support.bridge import BridgeProcess, BridgeThread
from tests.support.configs import config_from, one_connection_yaml, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, port_open, wait_until
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber


def test_one_illegal_address_is_isolated_and_the_rest_keeps_publishing(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    port = free_port()
    config = config_from(
        tmp_path,
        one_connection_yaml(
            site="iso1",
            mqtt_url=broker.url,
            modbus_port=port,
            mqtt="qos: 0, retain: false",
            devices="""
          - name: dev
            connection: lan
            interval: 200ms
            registers:
              - {name: a, address: 40001, type: uint16}
              - {name: b, address: 40002, type: uint16}
              - {name: hole, address: 40003, type: uint16}
              - {name: c, address: 40004, type: uint16}
              - {name: d, address: 40005, type: uint16}
            """,
        ),
    )
    sim = SimThread(config).start()
    for name, value in (("a", 1), ("b", 2), ("c", 3), ("d", 4)):
        sim.set_value("dev", name, value)
    sim.call(lambda: sim.sim.unit("dev").illegal.add((Table.HOLDING, 2)))
    bridge = BridgeThread(config).start()
    try:
        for name, value in (("a", 1), ("b", 2), ("c", 3), ("d", 4)):
            got = subscriber.wait_for(f"iso1/dev/{name}", 5)
            assert all(m.json()["value"] == value for m in got)
        assert not subscriber.on("iso1/dev/hole")
        assert subscriber.on("iso1/dev/status")[-1].text == "online"
        metrics = bridge.bridge.metrics.registry
        assert metrics.get_sample_value("modbus_bridge_bad_registers", {"device": "dev"}) == 1
        # after isolation, each tick costs the good chunks only: no new refusals
        refused = {"connection": "lan", "device": "dev", "function": "3"}
        before = metrics.get_sample_value(
            "modbus_bridge_requests_total", {**refused, "result": "ModbusExceptionResponse"}
        )
        subscriber.wait_for("iso1/dev/a", 15)
        after = metrics.get_sample_value(
            "modbus_bridge_requests_total", {**refused, "result": "ModbusExceptionResponse"}
        )
        assert before == after, "isolated registers must not be re-read every tick"
    finally:
        bridge.stop()
        sim.stop()


def test_garbage_and_hang_up_slaves_do_not_disturb_a_good_one(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    good, garbage, closer = free_port(), free_port(), free_port()
    config = config_from(
        tmp_path,
        f"""
        site: bad
        mqtt: {{url: "{broker.url}", qos: 0, retain: false}}
        connections:
          - {{name: good, type: tcp, host: 127.0.0.1, port: {good}, timeout: 0.5}}
          - {{name: noise, type: tcp, host: 127.0.0.1, port: {garbage}, timeout: 0.5}}
          - {{name: hangup, type: tcp, host: 127.0.0.1, port: {closer}, timeout: 0.5}}
        devices:
          - {{name: ok, connection: good, interval: 200ms,
              registers: [{{name: v, address: 40001, type: uint16}}]}}
          - {{name: noisy, connection: noise, interval: 200ms,
              registers: [{{name: v, address: 40001, type: uint16}}]}}
          - {{name: rude, connection: hangup, interval: 200ms,
              registers: [{{name: v, address: 40001, type: uint16}}]}}
        """,
    )
    good_only = replace(config, connections=config.connections[:1], devices=config.devices[:1])
    sim = SimThread(good_only).start()
    slaves = [BadSlave(garbage, "garbage").start(), BadSlave(closer, "close").start()]
    bridge = BridgeThread(config).start()
    try:
        subscriber.wait_payload("bad/noisy/status", "offline", timeout=10)
        subscriber.wait_payload("bad/rude/status", "offline", timeout=10)
        got = subscriber.wait_for("bad/ok/v", 20, timeout=10)
        stamps = [m.ts for m in got]
        gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]  # after the first
        assert max(gaps) < 0.4, gaps
        assert all(s.requests >= 1 for s in slaves)
        assert not subscriber.on("bad/noisy/v") and not subscriber.on("bad/rude/v")
    finally:
        bridge.stop()  # raises if any task crashed
        for s in slaves:
            s.stop()
        sim.stop()


def _buffer_yaml(broker: Mosquitto, port: int, buffer: Path, max_readings: int) -> str:
    return one_connection_yaml(
        site="kb",
        mqtt_url=broker.url,
        modbus_port=port,
        mqtt="qos: 1, retain: false",
        extra=f'buffer: {{path: "{buffer}", max_readings: {max_readings}}}',
        devices="""
        - name: dev
          connection: lan
          interval: 100ms
          registers: [{name: v, address: 40001, type: uint16}]
        """,
    )


def test_buffer_over_its_bound_drops_the_oldest_and_counts_them(
    tmp_path: Path, own_broker: Mosquitto
) -> None:
    config = config_from(
        tmp_path, _buffer_yaml(own_broker, free_port(), tmp_path / "b.db", max_readings=10)
    )
    sim = SimThread(config).start()
    sub = Subscriber(own_broker.port, "kb/dev/v", persistent_id="bound-test")
    bridge = BridgeThread(config).start()
    pipeline = bridge.bridge.pipeline
    try:
        sub.wait_for("kb/dev/v")
        own_broker.stop()
        wait_until(lambda: bridge.runner.call(lambda: pipeline.buffer.dropped) >= 15, 15, "drops")
        sub.clear()
        own_broker.start()
        stamps_after: list[float] = []

        def drained() -> bool:
            return bridge.runner.call(lambda: len(pipeline.buffer)) == 0

        wait_until(drained, 20, "the buffer to drain")
        dropped = bridge.runner.call(lambda: pipeline.buffer.dropped)
        metric = bridge.bridge.metrics.registry.get_sample_value(
            "modbus_bridge_buffer_dropped_total"
        )
        assert metric == dropped, (metric, dropped)
        stamps_after = [m.ts for m in sub.wait_for("kb/dev/v", 10)]
        assert stamps_after == sorted(stamps_after)
    finally:
        bridge.stop()
        sim.stop()
        sub.close()


def test_kill_9_then_restart_publishes_the_buffered_readings(
    tmp_path: Path, own_broker: Mosquitto
) -> None:
    port = free_port()
    path = write_config(tmp_path, _buffer_yaml(own_broker, port, tmp_path / "k.db", 100000))
    sim = SimThread(load_config(path, env={})).start()
    sub = Subscriber(own_broker.port, "kb/dev/v", persistent_id="kill9-test")
    proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
    try:
        sub.wait_for("kb/dev/v", timeout=20)
        own_broker.stop()
        down_at = time.time()
        time.sleep(2)  # readings pile up in the disk buffer
        proc.kill()
        killed_at = time.time()
        own_broker.start()
        proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
        wait_until(
            lambda: len({m.ts for m in sub.on("kb/dev/v") if down_at < m.ts < killed_at}) >= 15,
            30,
            "the readings buffered before kill -9",
        )
        outage = sorted({m.ts for m in sub.on("kb/dev/v") if down_at < m.ts < killed_at - 0.5})
        gaps = [b - a for a, b in itertools.pairwise(outage)]
        assert max(gaps) < 0.3, gaps
    finally:
        proc.close()
        sim.stop()
        sub.close()


def test_sighup_reloads_a_good_config_and_rejects_a_bad_one(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    port = free_port()
    base = one_connection_yaml(
        site="hup",
        mqtt_url=broker.url,
        modbus_port=port,
        devices="""
        - name: dev
          connection: lan
          interval: 200ms
          registers:
            - {name: first, address: 40001, type: uint16}
        """,
    )
    path = write_config(tmp_path, base)
    sim = SimThread(load_config(path, env={})).start()
    proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
    try:
        subscriber.wait_for("hup/dev/first", timeout=20)
        path.write_text(path.read_text().replace("type: uint16", "type: flot"))
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "new config rejected" in proc.output(), 10, "the rejection")
        assert "devices[0].registers[0].type" in proc.output()
        count = len(subscriber.on("hup/dev/first"))
        subscriber.wait_for("hup/dev/first", count + 3)  # still polling the old config
        path.write_text(base.replace("name: first", "name: second"))
        proc.proc.send_signal(signal.SIGHUP)
        subscriber.wait_for("hup/dev/second", timeout=15)
        assert proc.terminate() == 0
        assert "Traceback" not in proc.output()
    finally:
        proc.close()
        sim.stop()
        assert not port_open(port)
