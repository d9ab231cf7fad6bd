"""Statuses, last will, isolation between connections, TLS + auth, MQTT 3.1.1, and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from pathlib import Path

from modbus_mqtt_bridge.config.load import load_config
from tests.support.bridge import BridgeProcess, BridgeThread
from tests.support.configs import config_from, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.process import run_cli
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber
from tests.support.tls import make_certs


def _simple_yaml(mqtt: str, port: int, site: str = "plant1", extra_mqtt: str = "") -> str:
    return f"""
        site: {site}
        mqtt: {{url: "{mqtt}", client_id: bridge-{site}{extra_mqtt}}}
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: {port}, timeout: 0.5}}
        devices:
          - name: meter1
            id: 1
            connection: lan
            interval: 200ms
            registers:
              - {{name: voltage, parameter: "Voltage (L-N)", address: 40001, type: float32,
                  unit: V}}
        """


def test_device_status_follows_the_slave(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    port = free_port()
    config = config_from(tmp_path, _simple_yaml(broker.url, port, site="st"))
    sim = SimThread(config).start()
    bridge = BridgeThread(config).start()
    try:
        subscriber.wait_payload("st/meter1/status", "online")
        sim.stop()
        subscriber.wait_payload("st/meter1/status", "offline", timeout=10)
        subscriber.clear()
        sim = SimThread(config).start()
        subscriber.wait_payload("st/meter1/status", "online", timeout=70)
        subscriber.wait_for("st/meter1/voltage")
    finally:
        bridge.stop()
        sim.stop()
    subscriber.wait_payload("st/bridge/status", "offline")


def test_last_will_on_kill_9(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    port = free_port()
    path = write_config(tmp_path, _simple_yaml(broker.url, port, site="lw"))
    sim = SimThread(load_config(path, env={})).start()
    proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
    try:
        subscriber.wait_payload("lw/bridge/status", "online", timeout=20)
        subscriber.wait_for("lw/meter1/voltage")
        proc.kill()
        will = subscriber.wait_payload("lw/bridge/status", "offline", timeout=10)
        assert will.text == "offline"
        late = Subscriber(broker.port, "lw/bridge/status")
        assert late.wait_for("lw/bridge/status")[0].retain  # the will is retained
        late.close()
    finally:
        proc.close()
        sim.stop()


def test_sigterm_stops_cleanly_with_exit_0(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    port = free_port()
    path = write_config(tmp_path, _simple_yaml(broker.url, port, site="term"))
    sim = SimThread(load_config(path, env={})).start()
    proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
    try:
        subscriber.wait_for("term/meter1/voltage")
        assert proc.terminate() == 0, proc.output()
        subscriber.wait_payload("term/bridge/status", "offline")
        assert "Traceback" not in proc.output()
    finally:
        proc.close()
        sim.stop()


def test_dead_connection_does_not_delay_another(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    live, dead = free_port(), free_port()
    config = config_from(
        tmp_path,
        f"""
        site: iso
        mqtt: {{url: "{broker.url}", qos: 0, retain: false}}
        connections:
          - {{name: live, type: tcp, host: 127.0.0.1, port: {live}, timeout: 1}}
          - {{name: dead, type: tcp, host: 127.0.0.1, port: {dead}, timeout: 1}}
        devices:
          - name: good
            connection: live
            interval: 200ms
            registers: [{{name: v, address: 40001, type: uint16}}]
          - name: mute
            connection: dead
            unit: 2
            interval: 200ms
            registers: [{{name: v, address: 40001, type: uint16}}]
        """,
    )
    sim = SimThread(config).start()
    sim.call(lambda: setattr(sim.sim.unit("mute"), "silent", True))  # answers nothing: timeouts
    bridge = BridgeThread(config).start()
    try:
        subscriber.wait_payload("iso/mute/status", "offline", timeout=10)
        got = subscriber.wait_for("iso/good/v", 15, timeout=10)
        stamps = [m.ts for m in got]
        gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]  # after the first
        assert max(gaps) < 0.35, gaps
        assert not subscriber.on("iso/mute/v")
    finally:
        bridge.stop()
        sim.stop()


def test_tls_client_cert_and_password(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "plant", "s3cret!"], check=True)
    os.chmod(passwords, 0o600)
    tls_port = free_port()
    mq = Mosquitto(
        extra_conf=(
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {certs.ca}\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
            "require_certificate true\n"
            f"password_file {passwords}\n"
        ),
        anonymous=False,
    )
    mq.start()
    port = free_port()
    yaml_text = f"""
        site: tls
        mqtt:
          url: "mqtts://127.0.0.1:{tls_port}"
          username: ${{MQTT_USERNAME}}
          password: ${{MQTT_PASSWORD}}
          protocol: 3.1.1
          tls: {{ca_file: {certs.ca}, cert_file: {certs.client_cert}, key_file: {certs.client_key}}}
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: {port}, timeout: 0.5}}
        devices:
          - name: meter1
            connection: lan
            interval: 200ms
            registers: [{{name: v, address: 40001, type: uint16}}]
        """
    path = write_config(tmp_path, yaml_text)
    env = {"MQTT_USERNAME": "plant", "MQTT_PASSWORD": "s3cret!"}
    config = load_config(path, env=env)
    sim = SimThread(config).start()
    sim.set_value("meter1", "v", 42)
    proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path, env={**env, "LOG_LEVEL": "DEBUG"})
    try:
        # read it back over the TLS listener as the same user
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        got: list[bytes] = []
        c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="tls-reader")
        c.tls_set(
            ca_certs=str(certs.ca), certfile=str(certs.client_cert), keyfile=str(certs.client_key)
        )
        c.username_pw_set("plant", "s3cret!")
        c.on_connect = lambda cl, *_a: cl.subscribe("tls/meter1/v", 1)
        c.on_message = lambda _c, _u, m: got.append(m.payload)
        c.connect("127.0.0.1", tls_port)
        c.loop_start()
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        c.loop_stop()
        c.disconnect()
        assert got, proc.output()
        assert json.loads(got[0])["value"] == 42
        assert proc.terminate() == 0
        assert "s3cret!" not in proc.output(), "the password must never be logged"
    finally:
        proc.close()
        sim.stop()
        mq.close()


def test_wrong_password_is_a_clear_error_not_a_tight_loop(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "plant", "right"], check=True)
    mq = Mosquitto(extra_conf=f"password_file {passwords}\n", anonymous=False)
    mq.start()
    port = free_port()
    path = write_config(
        tmp_path,
        _simple_yaml(mq.url, port, site="auth", extra_mqtt=", username: plant, password: wrong"),
    )
    proc = BridgeProcess("run", "-c", str(path), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and proc.output().count("refused") < 2:
            time.sleep(0.1)
        out = proc.output()
        assert "refused the connection" in out and "Not authorized" in out, out
        # capped backoff: a handful of attempts in 6 s, not hundreds
        assert out.count("refused the connection") < 10, out
        assert "wrong" not in out.replace("wrong password", "")
    finally:
        proc.close()
        mq.close()


def test_once_json_dry_run_and_failure_exit(tmp_path: Path, broker: Mosquitto) -> None:
    port = free_port()
    path = write_config(tmp_path, _simple_yaml(broker.url, port, site="once"))
    sim = SimThread(load_config(path, env={})).start()
    sim.set_value("meter1", "voltage", 231.5)
    try:
        result = run_cli("once", "-c", str(path), "--dry-run", "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(p["parameter"], p["value"], p["unit"]) for p in lines] == [
            ("Voltage (L-N)", 231.5, "V")
        ]
        table = run_cli("once", "-c", str(path), "--dry-run", cwd=tmp_path)
        assert table.returncode == 0 and "231.5" in table.stdout and "voltage" in table.stdout
        sub = Subscriber(broker.port, "once/#")
        published = run_cli("once", "-c", str(path), cwd=tmp_path)
        assert published.returncode == 0, published.stderr
        assert sub.wait_for("once/meter1/voltage")[0].json()["value"] == 231.5
        sub.close()
    finally:
        sim.stop()
    failed = run_cli("once", "-c", str(path), "--dry-run", cwd=tmp_path)
    assert failed.returncode == 1
    assert "meter1" in failed.stdout and "Traceback" not in failed.stderr


def test_validate_prints_the_plan_and_exit_codes(tmp_path: Path) -> None:
    good = write_config(tmp_path, _simple_yaml("mqtt://127.0.0.1:1883", 1502), "good.yaml")
    ok = run_cli("validate", "-c", str(good), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "meter1" in ok.stdout and "request" in ok.stdout
    bad = write_config(
        tmp_path, _simple_yaml("mqtt://127.0.0.1:1883", 1502).replace("float32", "flot"), "bad.yaml"
    )
    result = run_cli("validate", "-c", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "devices[0].registers[0].type" in result.stderr and "float32" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("validate", "-c", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
