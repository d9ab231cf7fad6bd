"""The forward side-car as a real process (kill -9, restarts, two at once), and a reading publisher.

`python -m tests.support.forwarder SPEC.json` builds the Config from the dataclasses and
calls `forward.service.run` with shortened retry delays, so outage tests stay quick.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.laravel import REPO, LaravelApp
from tests.support.ports import wait_until
from tests.support.process import LoggedProcess

# (device_id, device name, register name, parameter, unit, register_address, data_type):
# the seeded devices and parameters of the Laravel app.
PARAMETERS = [
    (1, "meter1", "voltage_ln", "Voltage (L-N)", "V", 40001, "float"),
    (1, "meter1", "voltage_ll", "Voltage (L-L)", "V", 40003, "float"),
    (1, "meter1", "current", "Current", "A", 40005, "float"),
    (1, "meter1", "active_power", "Active Power", "kW", 40007, "float"),
    (1, "meter1", "power_factor", "Power Factor", None, 40011, "float"),
    (1, "meter1", "frequency", "Frequency", "Hz", 40013, "float"),
    (1, "meter1", "energy_import", "Active Energy Import", "kWh", 40015, "uint32"),
    (2, "hvac", "voltage_ln", "Voltage (L-N)", "V", 30001, "float"),
    (2, "hvac", "current", "Current", "A", 30007, "float"),
    (2, "hvac", "active_power", "Active Power", "W", 30013, "float"),
    (2, "hvac", "frequency", "Frequency", "Hz", 30071, "float"),
]
BASE_S = 1_751_990_400  # 2025-07-08T16:00:00Z


@dataclass(frozen=True)
class Published:
    topic: str
    payload: dict[str, Any]

    @property
    def description(self) -> str:
        return str(self.payload["description"])


def readings(site: str, tag: str, n: int, start: int = 0) -> list[Published]:
    """n reading messages (SPEC 3); each one's description `tag-i` identifies it in Laravel."""
    out = []
    for i in range(start, start + n):
        device_id, device, register, parameter, unit, address, data_type = PARAMETERS[
            i % len(PARAMETERS)
        ]
        seconds = BASE_S + i  # distinct per reading, so distinct per (device, parameter)
        payload = {
            "value": round(200 + i * 0.1, 3),
            "unit": unit,
            "ts": f"{_iso(seconds)}.{(i * 7) % 1000:03d}Z",
            "device_id": device_id,
            "parameter": parameter,
            "register_address": address,
            "data_type": data_type,
            "description": f"{tag}-{i}",
        }
        out.append(Published(f"{site}/{device}/{register}", payload))
    return out


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class Publisher:
    """Publishes like the bridge does: QoS 1, retained, MQTT 5; waits for every PUBACK."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: list[Published], retain: bool = True) -> None:
        infos = [
            self.client.publish(m.topic, json.dumps(m.payload), qos=1, retain=retain)
            for m in messages
        ]
        for info in infos:
            info.wait_for_publish(30)

    def raw(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def spec(site: str, mqtt_port: int, outbox: Path, **forward: Any) -> dict[str, Any]:
    return {
        "site": site,
        "mqtt_url": f"mqtt://127.0.0.1:{mqtt_port}",
        "outbox": str(outbox),
        **forward,
    }


class ForwarderProcess(LoggedProcess):
    """One side-car process; its log stays readable for the test.

    By default `python -m tests.support.forwarder SPEC.json` (short retry delays, httpx
    request lines logged); with `cli=True` the product's own entry,
    `python -m modbus_mqtt_bridge forward -c CONFIG.yaml`, with the API URL and token in
    the legacy environment variables LARAVEL_API_URL / LARAVEL_API_TOKEN.
    """

    def __init__(
        self, spec_: dict[str, Any], workdir: Path, name: str = "forwarder", cli: bool = False
    ) -> None:
        log = workdir / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if cli:
            config = workdir / f"{name}.yaml"
            config.write_text(_yaml(spec_))
            env |= {
                "MODBUS_CONFIG": str(config),  # the legacy variables, no -c
                "LARAVEL_API_URL": spec_["api_url"],
                "LARAVEL_API_TOKEN": spec_["token"],
                "LOG_LEVEL": "INFO",
            }
            argv = ["-m", "modbus_mqtt_bridge", "forward"]
        else:
            path = workdir / f"{name}.json"
            path.write_text(json.dumps(spec_))
            argv = ["-m", "tests.support.forwarder", str(path)]
        super().__init__(argv, log, REPO, env)


def _yaml(spec_: dict[str, Any]) -> str:
    """The config file a user would write; URL and token come from the environment."""
    forward = {k: v for k, v in spec_.items() if k not in ("site", "mqtt_url", "api_url", "token")}
    lines = [f"site: {spec_['site']}", "mqtt:", f"  url: {spec_['mqtt_url']}", "forward:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in forward.items()]
    return "\n".join(lines) + "\n"


class Background(threading.Thread):
    """Publish in a thread (paced), so a test can break things mid-stream."""

    def __init__(self, port: int, messages: list[Published], per_second: float) -> None:
        super().__init__(daemon=True)
        self.port, self.messages, self.per_second = port, messages, per_second
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pub = Publisher(self.port)
            chunk = max(1, int(self.per_second / 20))
            for start in range(0, len(self.messages), chunk):
                pub.publish(self.messages[start : start + chunk])
                time.sleep(chunk / self.per_second)
            pub.close()
        except BaseException as exc:
            self.error = exc


class Sidecars:
    """The side-car processes of one test: started ready, killed at teardown."""

    def __init__(self, tmp: Path, broker_port: int, app: LaravelApp) -> None:
        self.tmp, self.broker_port, self.app = tmp, broker_port, app
        self.procs: list[ForwarderProcess] = []

    def start(
        self, site: str, name: str = "forwarder", cli: bool = False, **forward: Any
    ) -> ForwarderProcess:
        """Start one and wait until it has subscribed; same name = same client id and outbox."""
        forward.setdefault("api_url", self.app.api_url)
        forward.setdefault("token", self.app.token)
        forward.setdefault("client_id", f"{name}-{site}")
        outbox = self.outbox(name)
        settings = spec(site, self.broker_port, outbox, **forward)
        log = self.tmp / f"{name}.log"
        before = log.read_text().count("subscribed to") if log.exists() else 0
        proc = ForwarderProcess(settings, self.tmp, name, cli=cli)
        self.procs.append(proc)
        wait_until(
            lambda: proc.output().count("subscribed to") > before, 30, f"{name} to subscribe"
        )
        return proc

    def outbox(self, name: str = "forwarder") -> Path:
        return self.tmp / f"{name}.db"

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.tail()}" for p in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.close()


def assert_all_stored(
    app: LaravelApp, after_id: int, published: list[Published], timeout: float, logs: str = ""
) -> int:
    """Every published reading is stored, nothing else is; returns how many duplicates."""
    want = {m.description for m in published}
    try:
        wait_until(lambda: want <= set(app.descriptions(after_id)), timeout, "every reading", 0.2)
    except AssertionError as exc:
        missing = want - set(app.descriptions(after_id))
        raise AssertionError(
            f"{exc}: {len(missing)} of {len(want)} missing, e.g. {sorted(missing)[:10]}\n{logs}"
        ) from None
    stored = Counter(app.descriptions(after_id))
    extra = set(stored) - want
    assert not extra, f"stored readings nobody published: {sorted(extra)[:10]}"
    duplicates = sum(n - 1 for n in stored.values())
    print(f"{len(want)} readings stored, {duplicates} duplicates")  # shown with pytest -rP
    return duplicates


def outbox_depth(path: Path) -> int:
    with sqlite3.connect(path, timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def delivered_by(proc: ForwarderProcess) -> int:
    """From the side-car's closing line: `forward stopped: delivered N, ...`."""
    lines = [x for x in proc.output().splitlines() if "forward stopped: delivered" in x]
    assert lines, f"{proc.log.name} did not stop cleanly:\n{proc.tail()}"
    return int(lines[-1].split("delivered ", 1)[1].split(",", 1)[0])


def main(path: str) -> int:
    from modbus_mqtt_bridge.config.model import Config, ForwardConfig, MetricsConfig, MqttConfig
    from modbus_mqtt_bridge.forward.service import run
    from modbus_mqtt_bridge.retry import Backoff, RetryPolicy

    data = json.loads(Path(path).read_text())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.INFO)  # request lines: the tests read them
    own = ("site", "mqtt_url", "api_cap_s", "bridge_listen")
    forward = {k: v for k, v in data.items() if k not in own}
    if "exclude" in forward:
        forward["exclude"] = tuple(forward["exclude"])
    config = Config(
        site=data["site"],
        connections=(),
        devices=(),
        mqtt=MqttConfig(url=data["mqtt_url"]),
        # the bridge's port, which the side-car must leave alone (it has metrics_listen)
        metrics=MetricsConfig(listen=data.get("bridge_listen")),
        forward=ForwardConfig(**forward),
    )
    policy = RetryPolicy(
        api=Backoff(base_s=0.5, cap_s=float(data.get("api_cap_s", 2.0))),
        broker=Backoff(base_s=0.2, cap_s=1.0),
        pause_s=5.0,
    )
    return run(config, policy=policy)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
