"""The bridge as its neighbours see it: Prometheus scrapes, /status, Home Assistant discovery,
systemd's notify socket, and the `read` commissioning command, all against real parts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema

from tests.support.bridge import BridgeThread
from tests.support.configs import config_from, write_config
from tests.support.ha_schema import DEVICE_DISCOVERY
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.prom import get, promtool_check, samples, status_or_zero, value
from tests.support.sim import SimThread
from tests.support.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]


def _yaml(mqtt_url: str, modbus_port: int, site: str, extra: str = "") -> str:
    return f"""
        site: {site}
        mqtt: {{url: "{mqtt_url}"}}
        {extra}
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 0.3}}
        devices:
          - name: meter1
            id: 1
            connection: lan
            interval: 100ms
            registers:
              - {{name: voltage, address: 30001, type: float32, unit: V}}
              - {{name: setpoint, address: 40001, type: int16, scale: 0.1, unit: kW,
                  writable: true, min: 0, max: 100}}
              - {{name: pump, address: 00001, writable: true}}
        """


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, _, body = get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    return samples(body)


def _status(port: int) -> dict[str, Any]:
    code, _, body = get(f"http://127.0.0.1:{port}/status")
    assert code == 200
    return json.loads(body)  # type: ignore[no-any-return]


def test_metrics_and_status_follow_the_device(tmp_path: Path, broker: Mosquitto) -> None:
    http, modbus = free_port(), free_port()
    config = config_from(
        tmp_path,
        _yaml(broker.url, modbus, "obs1", f'metrics: {{listen: "127.0.0.1:{http}"}}'),
    )
    sim = SimThread(config).start()
    sim.set_value("meter1", "voltage", 231.5)
    bridge = BridgeThread(config).start()
    try:
        wait_until(
            lambda: status_or_zero(f"http://127.0.0.1:{http}/healthz") == 200, 15, "healthz 200"
        )
        ok = {"connection": "lan", "device": "meter1", "result": "ok"}
        first = wait_until(
            lambda: (
                (s := _scrape(http))
                and (value(s, "modbus_bridge_requests_total", function="4", **ok) or 0) > 0
                and s
            ),
            10,
            "FC4 requests counted",
        )
        assert value(first, "modbus_bridge_device_up", device="meter1") == 1
        assert value(first, "modbus_bridge_broker_connected") == 1
        first_success = value(
            first, "modbus_bridge_device_last_success_timestamp_seconds", device="meter1"
        )
        assert first_success is not None and abs(first_success - time.time()) < 10
        assert (
            value(first, "modbus_bridge_schedule_lateness_seconds_count", connection="lan") or 0
        ) > 0
        assert (
            value(first, "modbus_bridge_request_duration_seconds_count", connection="lan") or 0
        ) > 0

        def advanced() -> Any:
            s = _scrape(http)
            later = value(s, "modbus_bridge_device_last_success_timestamp_seconds", device="meter1")
            return (later or 0) > first_success and s

        second = wait_until(advanced, 10, "last success to move on")
        for name in ("modbus_bridge_requests_total", "modbus_bridge_readings_published_total"):
            labels = {**ok, "function": "4"} if "requests" in name else {"device": "meter1"}
            assert (value(second, name, **labels) or 0) >= (value(first, name, **labels) or 0)
        promtool_check(get(f"http://127.0.0.1:{http}/metrics")[2])

        status = _status(http)
        device = status["devices"]["meter1"]
        assert status["broker"]["connected"] is True and status["healthy"] is True
        assert device["online"] is True and device["values"]["voltage"]["value"] == 231.5

        sim.stop()
        offline = wait_until(
            lambda: (d := _status(http)["devices"]["meter1"])["online"] is False and d,
            10,
            "/status to show meter1 offline",
        )
        assert offline["offline_reason"] and offline["last_error"]
        assert offline["values"]["voltage"]["value"] == 231.5  # the last value is still shown
        after = _scrape(http)
        assert value(after, "modbus_bridge_device_up", device="meter1") == 0
        # the bridge itself is healthy: broker connected, loop alive
        assert get(f"http://127.0.0.1:{http}/healthz")[0] == 200
    finally:
        bridge.stop()
        sim.stop()


def test_discovery_published_and_resent_when_home_assistant_returns(
    tmp_path: Path, broker: Mosquitto
) -> None:
    modbus = free_port()
    config = config_from(
        tmp_path,
        _yaml(broker.url, modbus, "obs2", "homeassistant: {discovery: true, prefix: ha_obs2}"),
    )
    topic = "ha_obs2/device/obs2_meter1/config"
    watcher = Subscriber(broker.port, "ha_obs2/#")
    sim = SimThread(config).start()
    bridge = BridgeThread(config).start()
    try:
        payload = watcher.wait_for(topic)[0].json()
        errors = list(jsonschema.Draft202012Validator(DEVICE_DISCOVERY).iter_errors(payload))
        assert not errors, [e.message for e in errors]
        assert set(payload["cmps"]) == {"voltage", "setpoint", "pump"}
        assert payload["cmps"]["setpoint"]["command_topic"] == "obs2/meter1/setpoint/set"
        assert (payload["cmps"]["setpoint"]["min"], payload["cmps"]["setpoint"]["max"]) == (0, 100)

        late = Subscriber(broker.port, topic)  # the copy kept by the broker is retained
        assert late.wait_for(topic)[0].retain
        late.close()

        watcher.clear()
        watcher.publish("ha_obs2/status", "offline")
        watcher.publish("ha_obs2/status", "online")
        again = watcher.wait_for(topic)
        assert again[0].json() == payload
        time.sleep(0.3)
        assert len(watcher.on(topic)) == 1  # `offline` and our own echo do not re-send
    finally:
        bridge.stop()
        sim.stop()
        watcher.publish(topic, "", retain=True)  # leave no device behind in the shared broker
        watcher.close()


def test_sd_notify_ready_watchdog_stopping(tmp_path: Path, broker: Mosquitto) -> None:
    modbus = free_port()
    path = write_config(tmp_path, _yaml(broker.url, modbus, "obs3"))
    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(20)
    received: list[str] = []

    def until(line: str) -> None:
        while line not in received:
            received.extend(sock.recv(4096).decode().split("\n"))

    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "WATCHDOG_USEC": "400000",
        "PYTHONPATH": str(ROOT),
    }
    with (tmp_path / "bridge.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modbus_mqtt_bridge", "run", "-c", str(path)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            until("READY=1")
            ready_at = received.index("READY=1")
            until("WATCHDOG=1")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, (tmp_path / "bridge.log").read_text()
            until("STOPPING=1")
            assert any(line.startswith("STATUS=connected to") for line in received[ready_at:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            sock.close()


def _read_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modbus_mqtt_bridge", "read", "--host", "127.0.0.1", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_read_command_shows_every_decoding(tmp_path: Path) -> None:
    modbus = free_port()
    config = config_from(tmp_path, _yaml("mqtt://127.0.0.1:1", modbus, "obs4"))
    sim = SimThread(config).start()
    sim.set_value("meter1", "voltage", 231.5)
    try:
        out = _read_cli("--port", str(modbus), "--address", "30001", "--count", "2")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert "0x4367 0x8000" in lines[1]
        assert any(
            line.split()[:3] == ["float32", "big", "big"] and line.endswith("231.5")
            for line in lines
        ), out.stdout
        assert any(line.split()[:2] == ["uint16", "big"] for line in lines)
    finally:
        sim.stop()
    failed = _read_cli("--port", str(modbus), "--address", "30001", "--timeout", "0.3")
    assert failed.returncode == 1 and failed.stderr.startswith("error:"), failed.stderr
    assert _read_cli("--address", "99999").returncode == 2


def test_status_stays_true_for_a_device_that_is_down_and_it_returns_within_reconnect_max(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """Nothing answers at first: /status counts every failed try with a moving last_error_at,
    the requests series exists at 0, and once the device answers it is polled again within
    `reconnect_max` (it used to take up to the 60 s cap, and /status showed 0 failures)."""
    http, modbus = free_port(), free_port()
    yaml = _yaml(broker.url, modbus, "obs3", f'metrics: {{listen: "127.0.0.1:{http}"}}')
    yaml = yaml.replace("timeout: 0.3}", "timeout: 0.3, reconnect_max: 1s}")
    config = config_from(tmp_path, yaml)
    bridge = BridgeThread(config).start()
    sim = SimThread(config)
    try:
        wait_until(
            lambda: status_or_zero(f"http://127.0.0.1:{http}/healthz") == 200, 15, "healthz 200"
        )
        down = wait_until(
            lambda: (d := _status(http)["devices"]["meter1"])["failures_in_a_row"] >= 2 and d,
            15,
            "two failed tries counted while the link is down",
        )
        assert down["online"] is False and "cannot connect" in down["last_error"]
        later = wait_until(
            lambda: (
                (d := _status(http)["devices"]["meter1"])["last_error_at"] > down["last_error_at"]
                and d
            ),
            10,
            "last_error_at to move on with each try",
        )
        assert later["failures_in_a_row"] > down["failures_in_a_row"]
        ok = {"connection": "lan", "device": "meter1", "result": "ok", "function": "4"}
        assert value(_scrape(http), "modbus_bridge_requests_total", **ok) == 0

        wait_until(
            lambda: _status(http)["devices"]["meter1"]["failures_in_a_row"] >= 6,
            30,
            "the backoff to reach its cap",
        )
        sim.start()
        back_from = time.monotonic()
        wait_until(lambda: _status(http)["devices"]["meter1"]["online"] is True, 10, "online")
        assert time.monotonic() - back_from < 1 + 0.3 + 1.5  # reconnect_max + timeout + polls
        assert _status(http)["devices"]["meter1"]["failures_in_a_row"] == 0
    finally:
        bridge.stop()
        sim.stop()
