"""`demo`: simulator + broker + bridge + a live terminal view, on a bare machine.

Uses the broker at --mqtt-url when one answers; otherwise starts an embedded pure-Python
broker (amqtt, the `demo` extra) in-process, so values move within seconds with nothing
else installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..bridge.service import Bridge, install_stop_signals
from ..config.load import load_config
from ..config.model import MqttConfig
from ..errors import BridgeError
from ..modbus.simulator import serve
from ..mqtt.port import Message, MqttPort

DEMO_CONFIG = """\
site: demo
mqtt: {{url: "{url}", protocol: "3.1.1", qos: 1, retain: true}}
metrics: {{listen: "127.0.0.1:{http_port}"}}
connections:
  - {{name: sim, type: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 2}}
devices:
  - name: meter1
    id: 1
    connection: sim
    unit: 1
    interval: 1s
    registers:
      - {{name: voltage_ln, parameter: "Voltage (L-N)", address: 40001, type: float32, unit: V}}
      - {{name: current, parameter: Current, address: 40003, type: float32, unit: A}}
      - {{name: frequency, parameter: Frequency, address: 40005, type: float32, unit: Hz}}
      - {{name: active_power, parameter: Active Power, address: 40007, type: float32, unit: W}}
      - {{name: energy, parameter: Active Energy Import, address: 40009, type: float64, unit: kWh,
         interval: 5s}}
      - {{name: status_word, address: 40013, type: uint16}}
      - {{name: relay, address: 00001, type: bool}}
  - name: hvac
    id: 2
    connection: sim
    unit: 2
    interval: 2s
    byte_order: little
    word_order: little
    registers:
      - {{name: supply_temp, address: 30001, type: int16, scale: 0.1, unit: "°C"}}
      - {{name: setpoint, address: 40001, type: float32, unit: "°C", writable: true,
         min: 5, max: 30}}
      - {{name: fan_speed, address: 40003, type: uint32, unit: "%"}}
"""


def _free_port(preferred: int | None = None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise BridgeError("no free TCP port on 127.0.0.1")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _embedded_broker() -> tuple[Any, str]:
    try:
        from amqtt.broker import Broker  # noqa: PLC0415  (optional extra)
    except ImportError as exc:
        raise BridgeError(
            "no MQTT broker answers and the embedded one is not installed: "
            "pip install 'modbus-mqtt-bridge[demo]' or pass --mqtt-url"
        ) from exc
    port = _free_port(1883)
    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}})
    await broker.start()
    return broker, f"mqtt://127.0.0.1:{port}"


class LiveView:
    """Latest reading per topic, redrawn in place (or printed as lines with --plain)."""

    def __init__(self, plain: bool) -> None:
        self.plain = plain
        self.rows: dict[str, tuple[str, str, float]] = {}
        self.statuses: dict[str, str] = {}
        self.page_url = ""  # the bridge's status page, shown on every redraw
        self.seen: set[str] = set()  # every topic, so a shared broker can be tidied on exit
        self.footer = ""  # under the screen: a line printed before it would be wiped

    def on_message(self, msg: Message) -> None:
        if msg.payload:
            self.seen.add(msg.topic)
        parts = msg.topic.split("/")
        if parts[-1] == "status":
            self.statuses["/".join(parts[1:-1])] = msg.payload.decode(errors="replace")
            return
        if len(parts) != 3:
            return
        with contextlib.suppress(ValueError):
            data = json.loads(msg.payload)
            value = data["value"]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            self.rows["/".join(parts[1:])] = (shown, data.get("unit") or "", time.monotonic())
            if self.plain:
                print(f"{msg.topic} = {shown} {data.get('unit') or ''}".rstrip(), flush=True)

    def render(self) -> str:
        now = time.monotonic()
        lines = ["modbus-mqtt-bridge demo — live readings (Ctrl-C to stop)"]
        lines += [f"status page: {self.page_url}", ""] if self.page_url else [""]
        lines += [f"  {name:<8} {state}" for name, state in sorted(self.statuses.items())]
        lines.append("")
        for topic, (value, unit, at) in sorted(self.rows.items()):
            lines.append(f"  {topic:<24} {value:>14} {unit:<4} {now - at:4.1f}s ago")
        if self.footer:
            lines += ["", self.footer]
        return "\n".join(lines)


async def run_demo(mqtt_url: str, duration_s: float | None = None, plain: bool = False) -> int:
    url_cfg = MqttConfig(url=mqtt_url)
    broker = None
    if not _reachable(url_cfg.host, url_cfg.port):
        broker, mqtt_url = await _embedded_broker()
        print(f"no broker at {url_cfg.url}; started an embedded one at {mqtt_url}", file=sys.stderr)
    else:
        print(
            f"using the broker already answering at {url_cfg.url}; the retained demo/* "
            "messages are cleared on exit",
            file=sys.stderr,
        )
    workdir = Path(tempfile.mkdtemp(prefix="mmb-demo-"))
    path = workdir / "demo.yaml"
    http_port = _free_port(9105)
    path.write_text(DEMO_CONFIG.format(url=mqtt_url, modbus_port=_free_port(), http_port=http_port))
    config = load_config(path)
    stop = asyncio.Event()
    install_stop_signals(stop)
    view = LiveView(plain)
    view.page_url = f"http://127.0.0.1:{http_port}/"
    print(f"status page: {view.page_url}  (open it in a browser)", file=sys.stderr, flush=True)
    # On the live screen below the readings (printed before, the first redraw wipes it).
    view.footer = f"demo config: {path}  (try: modbus-mqtt-bridge validate -c {path})"
    if plain:
        print(view.footer, file=sys.stderr)
    try:
        await _run_parts(config, stop, view, duration_s)
    finally:
        if broker is not None:
            await broker.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


async def _run_parts(
    config: Any, stop: asyncio.Event, view: LiveView, duration_s: float | None
) -> None:
    watcher = MqttPort(config.mqtt, f"demo-view-{int(time.time())}")
    watcher.on_message = view.on_message
    async with asyncio.TaskGroup() as tg:
        tg.create_task(serve(config, stop), name="simulator")
        tg.create_task(Bridge(config).run(stop), name="bridge")
        await watcher.connect()
        watcher.subscribe(f"{config.site}/#", qos=0)
        started = time.monotonic()
        while not stop.is_set():
            if not view.plain:
                print("\x1b[2J\x1b[H" + view.render(), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if duration_s is not None and time.monotonic() - started >= duration_s:
                stop.set()
    # The bridge has stopped (its last "offline" is in): leave no retained demo/* behind.
    for topic in sorted(view.seen):
        watcher.publish(topic, b"", qos=1, retain=True)
    await watcher.wait_acked(timeout_s=10)  # disconnect alone may drop what is unsent
    await watcher.disconnect()
