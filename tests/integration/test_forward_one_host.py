"""The shipped units' arrangement: `run` and `forward` from one config on one host, together.

Real Mosquitto, the project's simulator, the real Laravel app; both processes started the
way systemd starts them (same config file, same $STATE_DIRECTORY, secrets from the
environment), at the same time. On main the side-car took the bridge's metrics.listen and
died with `address already in use`.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modbus_mqtt_bridge.config.load import load_config
from tests.support.laravel import LaravelApp
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port, wait_until
from tests.support.process import LoggedProcess
from tests.support.sim import SimThread

pytestmark = [pytest.mark.integration, pytest.mark.laravel]

MQTT_PASSWORD = "mqtt-pw-Zq81-never-shown"


def example_shaped(site: str, broker: Mosquitto, modbus: int, bridge: int, sidecar: int) -> str:
    """config/example.yaml's shape: secrets as ${VAR}, paths left to the state directory."""
    return textwrap.dedent(f"""\
        site: {site}
        mqtt:
          url: {broker.url}
          username: ${{MQTT_USERNAME}}
          password: ${{MQTT_PASSWORD}}
        buffer:
          max_readings: 100000                # path left out: $STATE_DIRECTORY/buffer.db
        metrics:
          listen: "127.0.0.1:{bridge}"
        forward:
          subscribe: "$share/forwarders/{site}/+/+"
          api_url: ${{LARAVEL_API_URL}}
          token: ${{LARAVEL_API_TOKEN}}
          exclude: ["{site}/+/demand_setpoint"]  # the API knows no such parameter
          metrics_listen: "127.0.0.1:{sidecar}"
        connections:
          - {{name: lan, type: tcp, host: 127.0.0.1, port: {modbus}, timeout: 1}}
        devices:
          - name: meter1
            id: 1
            connection: lan
            interval: 500ms
            registers:
              - {{name: voltage_ln, parameter: "Voltage (L-N)", address: 40001, type: float32,
                  unit: V}}
              - {{name: current, parameter: Current, address: 40005, type: float32, unit: A}}
              - {{name: demand_setpoint, parameter: Demand Setpoint, address: 40101,
                  type: int16, writable: true}}
        """)


class Service(LoggedProcess):
    def __init__(self, command: str, config: Path, env: dict[str, str]) -> None:
        argv = ["-m", "modbus_mqtt_bridge", command, "-c", str(config)]
        super().__init__(argv, config.parent / f"{command}.log", config.parent, env)


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for proc in started:
        proc.close()


def test_bridge_and_sidecar_share_one_config_on_one_host(
    tmp_path: Path, broker: Mosquitto, app: LaravelApp, services: list[Service]
) -> None:
    site = "onehost"
    modbus, bridge_port, sidecar_port = free_port(), free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(example_shaped(site, broker, modbus, bridge_port, sidecar_port))
    state = tmp_path / "state"  # StateDirectory=modbus-mqtt-bridge, shared by both units
    env = {
        **os.environ,
        "STATE_DIRECTORY": str(state),
        "LARAVEL_API_URL": app.api_url,
        "LARAVEL_API_TOKEN": app.token,
        "MQTT_USERNAME": "plant",
        "MQTT_PASSWORD": MQTT_PASSWORD,
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    sim = SimThread(load_config(config, env=env)).start()
    after = app.last_id()
    try:
        services.extend(Service(cmd, config, env) for cmd in ("forward", "run"))
        sidecar, bridge = services
        logs = lambda: f"{sidecar.tail()}\n--- bridge\n{bridge.tail()}"  # noqa: E731

        def stored(parameter: str) -> int:
            sql = "SELECT count(*) FROM readings WHERE id > ? AND device_id = 1 AND parameter = ?"
            return int(app.query(sql, after, parameter)[0][0])

        wait_until(
            lambda: stored("Voltage (L-N)") >= 6 and stored("Current") >= 6,
            60,
            f"the bridge's readings in Laravel through the side-car\n{logs()}",
            every=0.2,
        )
        for port in (bridge_port, sidecar_port):  # each process on its own port, both healthy
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200, (port, health.text, logs())
        sidecar_status = httpx.get(f"http://127.0.0.1:{sidecar_port}/status", timeout=5).json()
        bridge_status = httpx.get(f"http://127.0.0.1:{bridge_port}/status", timeout=5)
        assert sidecar_status["role"] == "forwarder"
        assert "forwarder" not in bridge_status.text
        assert sidecar_status["outbox_path"] == str(state / "outbox.db")
        assert (state / "outbox.db").is_file()
        assert (state / "buffer.db").is_file(), "the bridge's disk buffer, by default"
        metrics = httpx.get(f"http://127.0.0.1:{sidecar_port}/metrics", timeout=5).text
        assert 'modbus_forwarder_messages_ignored_total{reason="excluded"}' in metrics

        # sub-second polling: two rows a second share one body timestamp, both delivered
        rows = app.query(
            "SELECT count(*), count(DISTINCT timestamp) FROM readings"
            " WHERE id > ? AND parameter = 'Voltage (L-N)'",
            after,
        )[0]
        assert rows[0] > rows[1], rows
        assert stored("Demand Setpoint") == 0
        assert sidecar_status["dead_letters_kept"] == 0, "excluded, not dead-lettered"

        pages = [
            httpx.get(f"http://127.0.0.1:{port}/{page}", timeout=5).text
            for port in (bridge_port, sidecar_port)
            for page in ("status", "metrics", "healthz")
        ]
        assert bridge.terminate() == 0
        assert sidecar.terminate() == 0
    finally:
        sim.stop()
    for secret in (app.token, MQTT_PASSWORD):
        for text in (sidecar.output(), bridge.output(), *pages):
            assert secret not in text
    assert "address already in use" not in sidecar.output() + bridge.output()
